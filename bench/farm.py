"""``make bench``, build farm section: builds per minute with 1, 2 and 4 local workers.

One server; its local workers are scaled through the admin API between runs, so every run
starts with the ImageBuilder unpacked and its package pool filled (a warm-up build with every
package used). Each run POSTs ``REQUESTS`` distinct requests at once (two packages out of
``PACKAGES`` each: the same work per build, a new request hash each time) and measures from
the first POST to the last 200. Scaling efficiency = (rate with N workers / rate with 1) / N.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import MirrorFixture
from tests.server_fixtures import firmforge_server, poll_build

__all__ = ["bench_farm", "print_farm"]

REQUESTS = 12
WORKER_COUNTS = (1, 2, 4)
BASE = {"version": "24.10.5", "target": "x86/64", "profile": "generic"}
PACKAGES = ("htop", "nano", "tcpdump", "curl", "adblock", "collectd-mod-cpu", "rrdtool1",
            "iperf3", "wireguard-tools")
_ADMIN = "bench-admin-token"


def _scale(client: httpx.Client, workers: int) -> None:
    answer = client.post("/api/v1/admin/workers", json={"local": workers},
                         headers={"Authorization": f"Bearer {_ADMIN}"})
    answer.raise_for_status()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        listed = client.get("/api/v1/workers").json()
        if len(listed["workers"]) == workers and listed["idle"] == workers:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{workers} workers did not come up")


def _run(client: httpx.Client, requests: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    pending = {client.post("/api/v1/build", json=r).json()["request_hash"] for r in requests}
    while pending:
        for digest in list(pending):
            status = client.head(f"/api/v1/build/{digest}").status_code
            if status != 202:
                if status != 200:
                    raise RuntimeError(client.get(f"/api/v1/build/{digest}").text)
                pending.discard(digest)
        time.sleep(0.1)
    return time.perf_counter() - started


def bench_farm(mirror: MirrorFixture, mirror_url: str, scratch: Path) -> dict[str, Any]:
    pairs = itertools.combinations(PACKAGES, 2)
    with firmforge_server(scratch / "farm", mirror_url, mirror.public_key, workers=1,
                          extra_env={"FIRMFORGE_ADMIN_TOKEN": _ADMIN}
                          ) as server, server.client() as client:
        _scale(client, 1)
        warm = client.post("/api/v1/build", json={**BASE, "packages": list(PACKAGES)})
        done = poll_build(client, warm.json()["request_hash"])
        assert done.status_code == 200, done.text
        runs = {}
        load_before = os.getloadavg()[0]
        for workers in WORKER_COUNTS:
            _scale(client, workers)
            requests = [{**BASE, "packages": list(next(pairs))} for _ in range(REQUESTS)]
            seconds = _run(client, requests)
            runs[workers] = {"seconds": round(seconds, 2),
                             "builds_per_minute": round(REQUESTS / seconds * 60, 1)}
        stats = client.get("/api/v1/stats").json()
    single = runs[1]["builds_per_minute"]
    for workers, run in runs.items():
        run["speedup"] = round(run["builds_per_minute"] / single, 2)
        run["scaling_efficiency"] = round(run["speedup"] / workers, 2)
    return {
        "requests_per_run": REQUESTS,
        "cpus": os.cpu_count(),
        "load_average_before": round(load_before, 2),
        "imagebuilder_cache_hit_rate": stats.get("imagebuilder_cache_hit_rate"),
        "workers": {str(k): v for k, v in runs.items()},
    }


def print_farm(farm: dict[str, Any]) -> None:
    print(f"{'build farm':<24}{'workers':>10}{'s':>10}{'builds/min':>12}{'speedup':>9}"
          f"{'efficiency':>12}")
    for workers, run in farm["workers"].items():
        print(f"{'':<24}{workers:>10}{run['seconds']:>10}{run['builds_per_minute']:>12}"
              f"{run['speedup']:>9}{run['scaling_efficiency']:>12}")
    print(f"{'':<24}({farm['requests_per_run']} distinct requests per run, {farm['cpus']} CPUs, "
          f"load {farm['load_average_before']} before; cache hit rate "
          f"{farm['imagebuilder_cache_hit_rate']})")
