"""Running the real thing for tests: the mirror over HTTP and ``firmforge serve`` as a process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from firmforge.api import create_app
from firmforge.config import Settings
from firmforge.db import Database
from firmforge.mirror import make_mirror_server
from firmforge.server import make_services


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def app_settings(data_dir: Path, mirror_url: str, mirror_key: Path, redis_url: str,
                 **overrides: Any) -> Settings:
    """Settings of an in-process app on the synthetic mirror, without workers; the database
    migrated."""
    settings = Settings(data_dir=data_dir, upstream_url=mirror_url, upstream_key=[mirror_key],
                        redis_url=redis_url, workers=0, **overrides)
    Database(settings.effective_database_url).migrate()
    return settings


@contextmanager
def app_client(settings: Settings) -> Iterator[TestClient]:
    """The app in process on an emptied Redis (``settings.redis_url``), without workers."""
    services = make_services(settings, str(settings.redis_url))
    services.queue.redis.flushdb()
    with TestClient(create_app(services)) as client:
        yield client


@contextmanager
def _serving(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def mirror_over_http(root: Path) -> Iterator[str]:
    """Serve a mirror tree on a free port; yields its base URL."""
    with _serving(make_mirror_server(root, "127.0.0.1", 0)) as url:
        yield url


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """Any directory over HTTP on a free port (an extra feed, a page); yields the base URL."""
    handler = partial(_QuietHandler, directory=str(root))
    with _serving(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as url:
        yield url


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    data_dir: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"firmforge serve exited:\n{log.read_text()[-4000:]}")
        try:
            httpx.get(f"{url}/api/v1/build/{'0' * 64}", timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"firmforge serve did not come up:\n{log.read_text()[-4000:]}")


@contextmanager
def firmforge_server(
    data_dir: Path,
    upstream_url: str,
    upstream_key: Path,
    workers: int = 1,
    redis_url: str | None = None,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    host: str = "127.0.0.1",
    wrap: Sequence[str] = (),
) -> Iterator[RunningServer]:
    """``firmforge serve`` in a child process, stopped (and its workers) afterwards.

    ``wrap`` goes before the command (``ip netns exec NAME``); ``host`` is where it listens."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [*wrap, sys.executable, "-m", "firmforge", "serve", "--host", host,
            "--port", str(port),
            "--data-dir", str(data_dir), "--upstream-url", upstream_url,
            "--upstream-key", str(upstream_key), "--workers", str(workers)]
    if redis_url:
        args += ["--redis-url", redis_url]
    if database_url:
        args += ["--database-url", database_url]
    log = data_dir / "serve.log"
    env = {**os.environ, **(extra_env or {})}
    with log.open("wb") as output:
        process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, env=env)
    url = f"http://{host}:{port}"
    try:
        _wait_until_up(url, process, log)
        yield RunningServer(url=url, process=process, log=log, data_dir=data_dir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def poll_build(client: httpx.Client, request_hash: str, timeout: float = 180) -> httpx.Response:
    """Poll like a client does (HEAD, then GET once it is no longer 202)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        head = client.head(f"/api/v1/build/{request_hash}")
        if head.status_code != 202:
            return client.get(f"/api/v1/build/{request_hash}")
        time.sleep(0.25)
    raise TimeoutError(f"build {request_hash} still running after {timeout} s")
