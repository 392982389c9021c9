"""Crash safety with real processes: a worker killed mid-build, a build out of time, Redis
restarted or emptied, the API server restarted. No 202 is ever forgotten."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import MirrorFixture
from tests.farm._fixtures import (
    busy_worker,
    kill_all,
    processes_under,
    redis_process,
    slow_mirror,
    wait_for,
    worker_pid,
)
from tests.server_fixtures import firmforge_server, mirror_over_http, poll_build

pytestmark = pytest.mark.slow

X86 = {"version": "24.10.5", "target": "x86/64", "profile": "generic"}


def test_a_worker_killed_mid_build_has_its_job_finished_by_another(
    mirror: MirrorFixture, tmp_path: Path
) -> None:
    with slow_mirror(mirror.root, delay=0.3) as url, firmforge_server(
        tmp_path / "serve", url, mirror.public_key, workers=2
    ) as server, server.client() as client:
        posted = client.post("/api/v1/build", json={**X86, "packages": ["luci"]})
        assert posted.status_code == 202
        digest = posted.json()["request_hash"]
        victim = wait_for(lambda: busy_worker(client, digest), 60, "no worker building")
        os.kill(worker_pid(victim["name"]), signal.SIGKILL)
        killed_at = time.monotonic()
        # gone from the list within the presence TTL, and the job goes on elsewhere
        wait_for(lambda: victim["name"] not in {
            w["name"] for w in client.get("/api/v1/workers").json()["workers"]}, 20,
            "dead worker still listed")
        done = poll_build(client, digest, timeout=180)
        assert done.status_code == 200, done.text
        assert time.monotonic() - killed_at < 120
        assert client.get(f"/store/{digest}/sha256sums").status_code == 200
        kill_all(processes_under(server.data_dir))  # the dead worker's orphaned make


def test_a_build_over_its_time_limit_is_stopped_with_its_processes(
    mirror: MirrorFixture, tmp_path: Path
) -> None:
    with slow_mirror(mirror.root, delay=0.5) as url, firmforge_server(
        tmp_path / "serve", url, mirror.public_key, workers=1,
        extra_env={"FIRMFORGE_JOB_TIMEOUT": "6"},
    ) as server, server.client() as client:
        posted = client.post("/api/v1/build", json={**X86, "packages": ["luci"]})
        failed = poll_build(client, posted.json()["request_hash"], timeout=120)
        assert failed.status_code == 500
        body = failed.json()
        assert "took longer than its limit of 6 s" in body["detail"], body["detail"]
        assert body["failed_stage"] in ("building_image", "container_setup")
        # the ImageBuilder's make and everything it started went with it
        wait_for(lambda: not processes_under(server.data_dir / "imagebuilders"), 10,
                 "build processes survived the timeout")
        # and the worker goes on with the next build
        ok = client.post("/api/v1/build", json={**X86, "packages": ["htop"]})
        assert ok.status_code == 202


def test_finished_builds_survive_a_redis_restart_and_a_lost_redis(
    mirror: MirrorFixture, tmp_path: Path
) -> None:
    with redis_process(tmp_path / "redis") as redis, mirror_over_http(mirror.root) as url:
        with firmforge_server(tmp_path / "serve", url, mirror.public_key, workers=1,
                              redis_url=redis.url) as server, server.client() as client:
            posted = client.post("/api/v1/build", json={**X86, "packages": ["htop"]})
            digest = posted.json()["request_hash"]
            first = poll_build(client, digest)
            assert first.status_code == 200
            images = first.json()["images"]
            queued = client.post("/api/v1/build", json={**X86, "packages": ["nano"]})
            assert queued.status_code in (200, 202)
            redis.kill()
            redis.start()  # with its append-only file
            assert client.get(f"/api/v1/build/{digest}").json()["images"] == images
            # the 202 of before Redis went away still ends in 200
            assert poll_build(client, queued.json()["request_hash"]).status_code == 200
        redis.kill()
        for leftover in (tmp_path / "redis").rglob("appendonly*"):
            if leftover.is_file():
                leftover.unlink()
        redis.start(persistent=False)  # everything in Redis lost: database and store answer
        with firmforge_server(tmp_path / "serve", url, mirror.public_key, workers=1,
                              redis_url=redis.url) as server, server.client() as client:
            again = client.get(f"/api/v1/build/{digest}")
            assert again.status_code == 200, again.text
            assert again.json()["images"] == images
            repeat = client.post("/api/v1/build", json={**X86, "packages": ["htop"]})
            assert repeat.status_code == 200


def test_queued_and_running_builds_continue_across_a_server_restart(
    mirror: MirrorFixture, tmp_path: Path
) -> None:
    with slow_mirror(mirror.root, delay=0.2) as url:
        with firmforge_server(tmp_path / "serve", url, mirror.public_key, workers=1
                              ) as server, server.client() as client:
            hashes = [client.post("/api/v1/build", json={**X86, "packages": [p]}
                                  ).json()["request_hash"] for p in ("luci", "htop")]
            wait_for(lambda: busy_worker(client, hashes[0]), 60, "no worker building")
            server.process.send_signal(signal.SIGKILL)  # no clean shutdown at all
            server.process.wait()
        kill_all(processes_under(tmp_path / "serve"))
        with firmforge_server(tmp_path / "serve", url, mirror.public_key, workers=1
                              ) as server, server.client() as client:
            for digest in hashes:
                assert poll_build(client, digest, timeout=180).status_code == 200
