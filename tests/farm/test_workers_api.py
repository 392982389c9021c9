"""``GET /api/v1/workers`` and the stats' cache hit rate, from a real server and its workers."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import MirrorFixture
from tests.server_fixtures import firmforge_server, mirror_over_http, poll_build

pytestmark = pytest.mark.slow

FIELDS = {"name", "host", "kind", "state", "current_job", "stage", "started_at",
          "uptime_seconds", "builds_done", "builds_failed", "imagebuilders_cached",
          "last_heartbeat"}
X86 = {"version": "24.10.5", "target": "x86/64", "profile": "generic"}


def wait_for_workers(client: httpx.Client, count: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get("/api/v1/workers").json()
        if len(body["workers"]) == count:
            return body
        time.sleep(0.3)
    raise TimeoutError(f"expected {count} workers, have {body}")


def test_workers_are_listed_with_what_they_did(mirror: MirrorFixture, tmp_path: Path) -> None:
    with mirror_over_http(mirror.root) as url, firmforge_server(
        tmp_path / "serve", url, mirror.public_key, workers=2
    ) as server, server.client() as client:
        body = wait_for_workers(client, 2)
        assert set(body) == {"workers", "busy", "idle", "queue_length"}
        assert body["idle"] == 2 and body["busy"] == 0 and body["queue_length"] == 0
        for worker in body["workers"]:
            assert set(worker) == FIELDS
            assert worker["kind"] == "local" and worker["state"] == "idle"
            assert worker["current_job"] is None and worker["stage"] is None
        posted = client.post("/api/v1/build", json={**X86, "packages": ["tcpdump"]})
        assert poll_build(client, posted.json()["request_hash"]).status_code == 200
        second = client.post("/api/v1/build", json={**X86, "packages": ["htop"]})
        assert poll_build(client, second.json()["request_hash"]).status_code == 200
        time.sleep(2.5)  # one heartbeat
        workers = client.get("/api/v1/workers").json()["workers"]
        assert sum(w["builds_done"] for w in workers) == 2
        assert max(w["imagebuilders_cached"] for w in workers) == 1
        stats = client.get("/api/v1/stats").json()
        assert stats["queue_length"] == 0
        # the second build went to the worker that had the ImageBuilder unpacked
        assert stats["imagebuilder_cache_hits"] == 1
        assert stats["imagebuilder_cache_misses"] == 1
        assert stats["imagebuilder_cache_hit_rate"] == 0.5
