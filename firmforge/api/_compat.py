"""What every ASU client needs from the transport, in one pure ASGI layer around the whole app.

- **CORS.** LuCI and the Firmware Selector call the server from another origin, so every
  response carries exactly one ``Access-Control-Allow-Origin: *`` (a duplicated header breaks
  Chrome, openwrt/asu#581) and an ``OPTIONS`` preflight is answered here with 204.
- **Cache-busters.** LuCI appends ``?<epoch-ms>`` to every URL; on the ASU surface
  (``/api/``, ``/json/``, ``/store/``, ``/overview``) the query string is dropped before
  routing, except on the few routes that take parameters (``keep_query``).
- **Doubled slashes.** Old LuCI builds ``//api/v1/build`` from a configured URL ending in
  ``/``; repeated slashes are collapsed in the path itself, for every method, so a POST is
  routed rather than redirected.

This layer sits outside the framework's own error middleware (see ``create_app``), so even an
unexpected 500 gets the header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["KEEP_QUERY_PATHS", "CompatMiddleware"]

KEEP_QUERY_PATHS: frozenset[str] = frozenset({
    "/api/v1/builds-by-version",
    "/api/v1/top-packages",
    "/api/v1/build-errors",
    "/api/v1/stats/downloads",
    "/api/v1/stats/builds",
})
"""Routes whose query parameters mean something (upstream's statistics routes, and
firmforge's download statistics)."""

_ASU_PREFIXES = ("/api/", "/json/", "/store/")
_ASU_PATHS = frozenset({"/overview"})

_ORIGIN = b"access-control-allow-origin"
_CORS_HEADERS: list[tuple[bytes, bytes]] = [
    (_ORIGIN, b"*"),
    (b"access-control-expose-headers", b"X-Imagebuilder-Status, X-Queue-Position"),
]
_PREFLIGHT_HEADERS: list[tuple[bytes, bytes]] = [
    *_CORS_HEADERS,
    (b"access-control-allow-methods", b"GET, POST, HEAD, OPTIONS"),
    (b"access-control-allow-headers", b"*"),
    (b"access-control-max-age", b"86400"),
    (b"allow", b"GET, POST, HEAD, OPTIONS"),
]
_SLASHES = re.compile(r"/{2,}")
_RAW_SLASHES = re.compile(rb"/{2,}")


class CompatMiddleware:
    """CORS on every response, preflights, query strings and doubled slashes (see module)."""

    def __init__(self, app: ASGIApp, keep_query: Iterable[str] = KEEP_QUERY_PATHS) -> None:
        self.app = app
        self.keep_query = frozenset(keep_query)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = self._normalized(scope)
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 204,
                        "headers": _PREFLIGHT_HEADERS})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != _ORIGIN]
                message = {**message, "headers": headers + _CORS_HEADERS}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _normalized(self, scope: Scope) -> Scope:
        path: str = scope["path"]
        collapse = "//" in path
        drop_query = bool(scope.get("query_string")) and self._is_asu(path)
        if not (collapse or drop_query):
            return scope
        scope = dict(scope)
        if collapse:
            path = _SLASHES.sub("/", path)
            scope["path"] = path
            if isinstance(scope.get("raw_path"), bytes):
                scope["raw_path"] = _RAW_SLASHES.sub(b"/", scope["raw_path"])
            drop_query = bool(scope.get("query_string")) and self._is_asu(path)
        if drop_query:
            scope["query_string"] = b""
        return scope

    def _is_asu(self, path: str) -> bool:
        if path in self.keep_query:
            return False
        return path.startswith(_ASU_PREFIXES) or path in _ASU_PATHS
