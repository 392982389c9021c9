"""``firmforge worker``: a build host that shares nothing with the server but Redis and a URL.

It asks the server (with its token) for the mirror, the mirror's trusted keys and the time
limits, downloads and verifies ImageBuilders itself into its own cache, takes jobs from the
same queues as the server's local workers, writes its build records through the server's API
and uploads each finished build there (``PUT /api/v1/worker/builds/<hash>``), where it is
checked, signed with the server's key (which never leaves the server) and published.

A call to the server that fails because the server is away (restarting, unreachable, a 5xx)
is tried again for up to ``SERVER_PATIENCE`` seconds before the build fails.
"""

from __future__ import annotations

import hashlib
import logging
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from redis import Redis

from firmforge.builder import BuildContext
from firmforge.errors import BuildError
from firmforge.heartbeat import worker_name
from firmforge.imagebuilder import ImageBuilderCache
from firmforge.queue import Stage
from firmforge.store import publishable
from firmforge.upstream import Upstream
from firmforge.usign import PublicKey
from firmforge.worker import WorkerProcesses, die_with_parent, work

__all__ = ["SERVER_PATIENCE", "RemoteOptions", "ServerClient", "run_remote_worker"]

log = logging.getLogger(__name__)

SERVER_PATIENCE = 120.0
"""Seconds a worker keeps trying to reach a server that is away before a build fails."""

_T = TypeVar("_T")


class ServerRefusedError(Exception):
    """The server answered 4xx: trying again would not help."""

    def __init__(self, response: httpx.Response) -> None:
        try:
            detail = str(response.json().get("detail", response.text))
        except ValueError:
            detail = response.text
        super().__init__(f"the server refused ({response.status_code}): {detail}")
        self.status_code = response.status_code
        self.detail = detail


@dataclass(frozen=True)
class RemoteOptions:
    """The flags of ``firmforge worker``: all a remote worker is told."""

    redis_url: str
    server_url: str
    token: str
    cache_dir: Path
    max_cache_gb: float
    concurrency: int = 1


class ServerClient:
    """The server's worker API, authenticated by the token, patient with a server away."""

    def __init__(self, server_url: str, token: str, patience: float = SERVER_PATIENCE) -> None:
        self.patience = patience
        self.client = httpx.Client(
            base_url=server_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(300.0, connect=10.0),
        )

    def _patiently(self, call: Callable[[], httpx.Response]) -> httpx.Response:
        deadline = time.monotonic() + self.patience
        delay = 0.5
        while True:
            try:
                response = call()
                if response.status_code < 500:
                    if response.status_code >= 400:
                        raise ServerRefusedError(response)
                    return response
                problem = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                problem = str(exc) or type(exc).__name__
            if time.monotonic() + delay > deadline:
                raise ConnectionError(f"the server {self.client.base_url} is unreachable: "
                                      f"{problem}")
            log.warning("server call failed (%s); trying again in %.1f s", problem, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def config(self) -> dict[str, Any]:
        return self._patiently(lambda: self.client.get("/api/v1/worker/config")).json()  # type: ignore[no-any-return]

    def record(self, operation: str, **arguments: Any) -> Any:
        body = {k: v.isoformat() if isinstance(v, datetime) else v
                for k, v in arguments.items()}
        response = self._patiently(
            lambda: self.client.post(f"/api/v1/worker/records/{operation}", json=body))
        return response.json()["result"]

    def upload(self, request_hash: str, archive: Path, digest: str) -> dict[str, Any]:
        def send() -> httpx.Response:
            with archive.open("rb") as body:
                return self.client.put(
                    f"/api/v1/worker/builds/{request_hash}", content=body,
                    headers={"X-Content-SHA256": digest,
                             "Content-Type": "application/x-tar"})

        return self._patiently(send).json()  # type: ignore[no-any-return]


class RemoteRecords:
    """``BuildRecords`` written through the server's API into its database."""

    def __init__(self, server: ServerClient) -> None:
        self.server = server

    def record_queued(self, request_hash: str, request: dict[str, Any], distro: str,
                      version: str, target: str, profile: str, packages: Any,
                      enqueued_at: datetime | None = None) -> int:
        return int(self.server.record(
            "record_queued", request_hash=request_hash, request=request, distro=distro,
            version=version, target=target, profile=profile, packages=list(packages),
            enqueued_at=enqueued_at))

    def record_started(self, build_id: int, worker: str) -> None:
        self.server.record("record_started", build_id=build_id, worker=worker)

    def record_stage(self, build_id: int, stage: str, seconds: float) -> None:
        self.server.record("record_stage", build_id=build_id, stage=stage, seconds=seconds)

    def record_done(self, build_id: int, **outputs: Any) -> None:
        self.server.record("record_done", build_id=build_id,
                           **{k: list(v) if k == "build_cmd" else v for k, v in outputs.items()})

    def record_failed(self, build_id: int, *, stage: str, detail: str) -> None:
        self.server.record("record_failed", build_id=build_id, stage=stage, detail=detail)


class RemoteStore:
    """The server as the worker's store: a build is uploaded, and comes back signed."""

    def __init__(self, server: ServerClient) -> None:
        self.server = server

    def publish(self, bin_dir: str, source: Path) -> dict[str, Any] | None:
        with tempfile.TemporaryDirectory(prefix=".upload-", dir=source.parent) as scratch:
            archive = Path(scratch) / "build.tar"
            with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
                for path in publishable(source):
                    tar.add(path, arcname=path.name, recursive=False)
            digest = _sha256(archive)
            try:
                return self.server.upload(bin_dir, archive, digest)
            except (ServerRefusedError, ConnectionError) as exc:
                raise BuildError(f"Could not store the build on the server: {exc}",
                                 stage=Stage.STORING.value) from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def remote_context(options: RemoteOptions, server: ServerClient, config: dict[str, Any],
                   name: str) -> BuildContext:
    """What a remote worker builds with: nothing of the server's but its API."""
    client = httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True)
    keys = [PublicKey.from_text(text) for text in config["upstream_keys"]]
    return BuildContext(
        upstream=Upstream(config["upstream_url"], keys, client),
        cache=ImageBuilderCache(options.cache_dir, max_bytes=int(options.max_cache_gb * 2**30),
                                client=client, upstream_url=config["upstream_url"]),
        store=RemoteStore(server),
        database=RemoteRecords(server),
        stage_timeout=float(config["stage_timeout"]),
        worker_name=name,
        signing_key=None,  # the server signs on upload
    )


def run_remote_process(options: RemoteOptions, index: int) -> None:
    """Process entry point of one remote worker."""
    die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = ServerClient(options.server_url, options.token)
    context = remote_context(options, server, server.config(), worker_name(index))
    work(context, Redis.from_url(options.redis_url), "remote")


def check_server(options: RemoteOptions) -> dict[str, Any]:
    """The server's worker configuration: proves the URL and the token before any work."""
    return ServerClient(options.server_url, options.token, patience=30.0).config()


def run_remote_worker(options: RemoteOptions, stop: Callable[[float], bool]) -> None:
    """Run ``options.concurrency`` worker processes until ``stop(timeout)`` returns True."""
    options.cache_dir.mkdir(parents=True, exist_ok=True)
    Redis.from_url(options.redis_url).ping()
    processes = WorkerProcesses(run_remote_process, (options,), options.concurrency)
    processes.start()
    try:
        while not stop(1.0):
            pass
    finally:
        processes.stop()
