"""Serving a mirror tree over HTTP, as a plain static file server like the real mirror."""

from __future__ import annotations

import functools
import logging
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["make_mirror_server", "serve_mirror"]

log = logging.getLogger(__name__)


class _MirrorRequestHandler(SimpleHTTPRequestHandler):
    """Static files only: no directory listings with query tricks, logs go to ``logging``."""

    extensions_map = {  # noqa: RUF012 - same shape as the base class attribute
        **SimpleHTTPRequestHandler.extensions_map,
        ".json": "application/json",
        ".sig": "text/plain",
        ".ipk": "application/octet-stream",
        ".zst": "application/zstd",
        ".xz": "application/x-xz",
    }

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


def make_mirror_server(root: Path, host: str, port: int) -> ThreadingHTTPServer:
    """A server for ``root`` bound to ``host:port`` (port 0 picks a free one)."""
    # a release mirror, or the LibreMesh flavour's feed host
    if not (root / ".versions.json").is_file() and not (root / "master").is_dir():
        raise FileNotFoundError(
            f"{root} holds no mirror (no .versions.json) and no feed host (no master/)")
    handler = functools.partial(_MirrorRequestHandler, directory=str(root))
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve_mirror(root: Path, host: str, port: int) -> None:
    """Serve until interrupted."""
    with make_mirror_server(root, host, port) as server:
        server.serve_forever()
