"""Fixtures for the ImageBuilder tests: a counting HTTP mirror, sources, crafted archives."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import lzma
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import zstandard

from firmforge.mirror import make_mirror_server
from tests.conftest import MirrorFixture


@dataclass(frozen=True)
class Source:
    """Stands in for ``firmforge.upstream.ImageBuilderSource``."""

    name: str
    url: str
    sha256: str
    version: str = "24.10.5"
    target: str = "x86/64"


class RequestLog(logging.Handler):
    """Collects the mirror server's access log lines (``"GET /path HTTP/1.1" 200 -``)."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.lines.append(record.getMessage())

    def gets(self, path: str) -> int:
        with self._lock:
            return sum(f'"GET {path} ' in line for line in self.lines)


@dataclass
class Served:
    root: Path
    url: str
    log: RequestLog
    extra: dict[str, object] = field(default_factory=dict)

    def source(self, path: Path, sha256: str | None = None, **kwargs: str) -> Source:
        """A source for the file ``path`` below ``root``; ``sha256`` defaults to the real one."""
        relative = path.relative_to(self.root).as_posix()
        digest = sha256 or hashlib.sha256(path.read_bytes()).hexdigest()
        return Source(name=path.name, url=f"{self.url}/{relative}", sha256=digest, **kwargs)

    def gets(self, path: Path) -> int:
        return self.log.gets("/" + path.relative_to(self.root).as_posix())


@pytest.fixture
def serve() -> Iterator[Callable[[Path], Served]]:
    """``serve(root)`` starts ``make_mirror_server`` on ``root`` in a thread, logging requests."""
    logger = logging.getLogger("firmforge.mirror._serve")
    previous_level = logger.level
    log = RequestLog()
    logger.addHandler(log)
    logger.setLevel(logging.INFO)
    running: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(root: Path) -> Served:
        server = make_mirror_server(root, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        running.append((server, thread))
        return Served(root=root, url=f"http://127.0.0.1:{server.server_address[1]}", log=log)

    try:
        yield start
    finally:
        for server, thread in running:
            server.shutdown()
            server.server_close()
            thread.join()
        logger.removeHandler(log)
        logger.setLevel(previous_level)


@pytest.fixture
def served_mirror(mirror: MirrorFixture, serve: Callable[[Path], Served]) -> Served:
    return serve(mirror.root)


@pytest.fixture
def www(tmp_path: Path, serve: Callable[[Path], Served]) -> Served:
    """An empty web root (with the ``.versions.json`` the server insists on)."""
    root = tmp_path / "www"
    root.mkdir()
    (root / ".versions.json").write_text(json.dumps({"versions_list": []}))
    return serve(root)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as http:
        yield http


def compress(data: bytes, name: str) -> bytes:
    if name.endswith(".zst"):
        return zstandard.ZstdCompressor().compress(data)
    return lzma.compress(data)


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, content in members:
            if content is not None:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                tar.addfile(info)
    return raw.getvalue()


def member(
    name: str,
    content: bytes | None = b"",
    *,
    kind: bytes = tarfile.REGTYPE,
    link: str = "",
    mode: int = 0o644,
    mtime: int = 1_700_000_000,
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.linkname = link
    if kind != tarfile.REGTYPE:
        content = None
    return info, content


def directory(name: str, mode: int = 0o755) -> tuple[tarfile.TarInfo, bytes | None]:
    return member(name, kind=tarfile.DIRTYPE, mode=mode)


def small_imagebuilder(top: str, *, filler: int = 0) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """A tiny stand-in ImageBuilder tree with the files the cache treats specially."""
    conf = (
        "## Remote package repositories\n"
        "src/gz openwrt_core https://downloads.openwrt.org/releases/24.10.5/targets/x/y/packages\n"
        "src/gz other https://downloads.openwrt.org.example.com/feed\n"
        "\nsrc imagebuilder file:packages\n"
    )
    return [
        directory(top),
        member(f"{top}/Makefile", b"info:\n\t@echo small\n"),
        member(f"{top}/repositories.conf", conf.encode()),
        directory(f"{top}/packages"),
        member(f"{top}/packages/Packages", b""),
        directory(f"{top}/staging_dir"),
        member(f"{top}/staging_dir/tool", b"#!/bin/sh\n" + b"#" * filler, mode=0o755),
        member(f"{top}/staging_dir/tool-link", kind=tarfile.SYMTYPE, link="tool"),
    ]


def write_archive(
    directory_: Path, name: str, members: list[tuple[tarfile.TarInfo, bytes | None]]
) -> Path:
    path = directory_ / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(compress(tar_bytes(members), name))
    return path
