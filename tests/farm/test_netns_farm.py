"""The distributed mode for real: a server and two remote workers, each a process in its own
network namespace, talking only over veth links (Redis and HTTP), sharing no files (each has its
own cache directory). A worker killed mid-build, a build out of time, Redis restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import MirrorFixture
from tests.farm._fixtures import (
    RedisProcess,
    busy_worker,
    processes_under,
    redis_process,
    slow_mirror,
    wait_for,
    worker_pid,
)
from tests.farm._netns import Network, namespace_network
from tests.server_fixtures import RunningServer, firmforge_server, poll_build

pytestmark = pytest.mark.slow

X86 = {"version": "24.10.5", "target": "x86/64", "profile": "generic"}
ATH79 = {"version": "24.10.5", "target": "ath79/generic", "profile": "tplink_archer-c7-v5"}


@dataclass
class Farm:
    network: Network
    redis: RedisProcess
    server: RunningServer
    client: httpx.Client
    workers: list[subprocess.Popen[bytes]]
    cache_dirs: list[Path]
    tokens: list[str]


def firmforge_cli(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "firmforge", *args], check=True,
                          capture_output=True, text=True).stdout.strip()


@contextmanager
def remote_worker(farm_dir: Path, wrap: list[str], redis_url: str, server_url: str,
                  token: str, cache_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = farm_dir / f"{cache_dir.name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*wrap, sys.executable, "-m", "firmforge", "worker", "--redis-url", redis_url,
             "--server-url", server_url, "--cache-dir", str(cache_dir)],
            stdout=output, stderr=subprocess.STDOUT,
            env={**os.environ, "FIRMFORGE_WORKER_TOKEN": token}, start_new_session=True)
    try:
        yield process
    finally:
        with_children_killed(process)


def with_children_killed(process: subprocess.Popen[bytes]) -> None:
    """The worker's whole session: its build processes and anything they started."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextmanager
def farm(mirror: MirrorFixture, tmp_path: Path, delay: float = 0.0,
         extra_env: dict[str, str] | None = None) -> Iterator[Farm]:
    try:
        network_context = namespace_network(workers=2)
        network = network_context.__enter__()
    except PermissionError as exc:
        pytest.skip(f"no network namespaces here: {exc}")
    with ExitStack() as stack:
        stack.push(network_context)
        url = stack.enter_context(slow_mirror(mirror.root, delay, host=network.outside))
        redis = stack.enter_context(redis_process(
            tmp_path / "redis", host=network.server.address, wrap=network.server.wrap))
        server = stack.enter_context(firmforge_server(
            tmp_path / "serve", url, mirror.public_key, workers=0, redis_url=redis.url,
            extra_env=extra_env, host=network.server.address, wrap=network.server.wrap))
        client = stack.enter_context(server.client())
        tokens = [firmforge_cli("worker-token", "create", f"host-{i}", "--data-dir",
                                str(server.data_dir)) for i in (1, 2)]
        cache_dirs = [tmp_path / f"worker-{i}-cache" for i in (1, 2)]
        workers = [stack.enter_context(remote_worker(
            tmp_path, host.wrap, redis.url, server.url, token, cache_dir))
            for host, token, cache_dir in zip(network.workers, tokens, cache_dirs, strict=True)]
        wait_for(lambda: len(client.get("/api/v1/workers").json()["workers"]) == 2, 60,
                 "remote workers did not show up")
        yield Farm(network, redis, server, client, workers, cache_dirs, tokens)


def test_two_remote_workers_build_over_the_network_sharing_no_files(
    mirror: MirrorFixture, tmp_path: Path
) -> None:
    with farm(mirror, tmp_path, delay=0.05) as the_farm:
        client = the_farm.client
        listed = client.get("/api/v1/workers").json()
        assert {w["kind"] for w in listed["workers"]} == {"remote"}
        requests = [{**base, "packages": [package]} for base in (X86, ATH79)
                    for package in ("htop", "nano")]
        hashes = [client.post("/api/v1/build", json=r).json()["request_hash"]
                  for r in requests]
        for digest in hashes:
            done = poll_build(client, digest, timeout=240)
            assert done.status_code == 200, done.text
            info = client.get(f"/api/v1/build/{digest}/info").json()
            assert info["signature"]["verified"] is True  # signed by the server on upload
            assert client.get(f"/store/{digest}/sha256sums.sig").status_code == 200
        wait_for(lambda: sum(w["builds_done"] for w in client.get(
            "/api/v1/workers").json()["workers"]) == 4, 10, "builds not counted")
        # locality: another x86 build goes to a worker that has that ImageBuilder unpacked
        before = client.get("/api/v1/stats").json()
        assert before["imagebuilder_cache_hits"] + before["imagebuilder_cache_misses"] == 4
        digest = client.post("/api/v1/build", json={**X86, "packages": ["tcpdump"]}
                             ).json()["request_hash"]
        assert poll_build(client, digest, timeout=120).status_code == 200
        after = wait_for(lambda: (s := client.get("/api/v1/stats").json())[
            "imagebuilder_cache_hits"] == before["imagebuilder_cache_hits"] + 1 and s, 10,
            "the build was not a cache hit")
        assert after["imagebuilder_cache_misses"] == before["imagebuilder_cache_misses"]
        # each host unpacked its ImageBuilders into its own cache; the server none at all
        for cache in the_farm.cache_dirs:
            assert any(p.suffix == ".json" for p in cache.iterdir()), cache
        assert not (the_farm.server.data_dir / "imagebuilders").exists()
        # the signing key stays on the server
        assert (the_farm.server.data_dir / "keys" / "firmforge.sec").is_file()
        for cache in the_farm.cache_dirs:
            assert not list(cache.rglob("*.sec")), cache
        # a revoked token is refused at once
        firmforge_cli("worker-token", "revoke", "host-2", "--data-dir",
                      str(the_farm.server.data_dir))
        refused = httpx.get(f"{the_farm.server.url}/api/v1/worker/config",
                            headers={"Authorization": f"Bearer {the_farm.tokens[1]}"})
        assert refused.status_code == 401
        assert "host-2" in firmforge_cli("worker-token", "list", "--data-dir",
                                         str(the_farm.server.data_dir))


def test_a_remote_worker_killed_mid_build_is_replaced_by_the_other(
    mirror: MirrorFixture, tmp_path: Path
) -> None:
    with farm(mirror, tmp_path, delay=0.3) as the_farm:
        client = the_farm.client
        digest = client.post("/api/v1/build", json={**X86, "packages": ["luci"]}
                             ).json()["request_hash"]
        victim = wait_for(lambda: busy_worker(client, digest), 90, "no worker building")
        # the whole host goes: its `firmforge worker` and the worker process building
        parent = int(Path(f"/proc/{worker_pid(victim['name'])}/stat").read_text()
                     .rsplit(")", 1)[1].split()[1])
        os.killpg(parent, signal.SIGKILL)
        wait_for(lambda: victim["name"] not in {
            w["name"] for w in client.get("/api/v1/workers").json()["workers"]}, 30,
            "dead worker still listed")
        done = poll_build(client, digest, timeout=240)
        assert done.status_code == 200, done.text


def test_a_remote_build_over_its_time_limit_is_stopped(
    mirror: MirrorFixture, tmp_path: Path
) -> None:
    with farm(mirror, tmp_path, delay=0.5, extra_env={"FIRMFORGE_JOB_TIMEOUT": "8"}
              ) as the_farm:
        client = the_farm.client
        digest = client.post("/api/v1/build", json={**X86, "packages": ["luci"]}
                             ).json()["request_hash"]
        failed = poll_build(client, digest, timeout=120)
        assert failed.status_code == 500
        assert "took longer than its limit of 8 s" in failed.json()["detail"]
        for cache in the_farm.cache_dirs:
            wait_for(lambda cache=cache: not processes_under(cache), 10,
                     "build processes survived the timeout")


def test_remote_workers_carry_on_after_a_redis_restart(
    mirror: MirrorFixture, tmp_path: Path
) -> None:
    with farm(mirror, tmp_path) as the_farm:
        client = the_farm.client
        digest = client.post("/api/v1/build", json={**X86, "packages": ["htop"]}
                             ).json()["request_hash"]
        first = poll_build(client, digest, timeout=120)
        assert first.status_code == 200
        queued = client.post("/api/v1/build", json={**X86, "packages": ["nano"]})
        the_farm.redis.kill()
        the_farm.redis.start()  # with its append-only file
        assert client.get(f"/api/v1/build/{digest}").json()["images"] == first.json()["images"]
        assert poll_build(client, queued.json()["request_hash"], timeout=180
                          ).status_code == 200
