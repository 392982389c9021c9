"""Cache hits without the framework: finished builds answered from process memory.

A finished build never changes, and most requests ask for one (routers polling, a second
router of the same model). Its rendered 200 body is kept here for a short while; a pure ASGI
middleware answers ``GET|HEAD /api/v1/build/{hash}`` and a ``POST /api/v1/build`` whose hash is
known straight from it, with no Redis round trip, no routing and no JSON encoding.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from firmforge.request import BuildRequest, request_hash

__all__ = ["CacheHitMiddleware", "FinishedResponses", "render_json"]

_BUILD_PATH = "/api/v1/build"
_STATUS_PREFIX = "/api/v1/build/"
_MEMO_ENTRIES = 4096
_MEMO_BODY_LIMIT = 8192


def render_json(body: dict[str, Any]) -> bytes:
    """The bytes Starlette's JSONResponse would send."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode()


class FinishedResponses:
    """Rendered 200 bodies by request hash, bounded in number and age.

    The age bound keeps a process from answering long after Redis has let the result go;
    several API processes each keep their own copy, which is fine for immutable results.
    """

    def __init__(self, max_entries: int = 20_000, ttl: float = 60.0) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, request_hash: str) -> bytes | None:
        with self._lock:
            entry = self._entries.get(request_hash)
            if entry is None:
                return None
            expires, body = entry
            if expires < time.monotonic():
                del self._entries[request_hash]
                return None
            self._entries.move_to_end(request_hash)
            return body

    def discard(self, request_hash: str) -> None:
        """Forget one answer (its files were collected from the store)."""
        with self._lock:
            self._entries.pop(request_hash, None)

    def put(self, request_hash: str, body: bytes) -> None:
        with self._lock:
            self._entries[request_hash] = (time.monotonic() + self.ttl, body)
            self._entries.move_to_end(request_hash)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


def _headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-imagebuilder-status", b"done"),
        (b"x-queue-position", b"0"),
    ]


class CacheHitMiddleware:
    def __init__(
        self, app: ASGIApp, responses: FinishedResponses, request_model: type[BuildRequest]
    ) -> None:
        self.app = app
        self.responses = responses
        self.request_model = request_model
        # the same bytes always parse to the same request: skip validation for repeats
        self._hashes: OrderedDict[bytes, str | None] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if method in ("GET", "HEAD") and path.startswith(_STATUS_PREFIX):
            body = self.responses.get(path[len(_STATUS_PREFIX):])
            if body is not None:
                await self._send(send, body, head=method == "HEAD")
                return
        elif method == "POST" and path == _BUILD_PATH:
            raw = await _read_body(receive)
            body = self.responses.get(self._hash_of(raw) or "")
            if body is not None:
                await self._send(send, body, head=False)
                return
            receive = _replay(raw, receive)
        await self.app(scope, receive, send)

    def _hash_of(self, raw: bytes) -> str | None:
        if raw in self._hashes:
            return self._hashes[raw]
        try:
            digest: str | None = request_hash(self.request_model.model_validate_json(raw))
        except (ValidationError, ValueError):
            digest = None  # the framework gives the proper error
        if len(raw) <= _MEMO_BODY_LIMIT:
            self._hashes[raw] = digest
            if len(self._hashes) > _MEMO_ENTRIES:
                self._hashes.popitem(last=False)
        return digest

    @staticmethod
    async def _send(send: Send, body: bytes, head: bool) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _headers(body)})
        await send({"type": "http.response.body", "body": b"" if head else body})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(raw: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the already-read body to the app, then the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay
