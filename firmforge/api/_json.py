"""Serving the read-only JSON documents from memory, without a worker-thread hop.

The overview, index, profile and revision documents change only when the catalog reloads
(every few minutes). Their handlers are ``async``: a document rendered in the last
``ttl`` seconds is answered straight from ``JSONMemo`` on the event loop; otherwise it is built
in the thread pool (the catalog may have to read the mirror) and remembered. Only successful
documents are remembered, so the keys are bounded by what the catalog knows (plus ``limit``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from firmforge.api._hits import render_json
from firmforge.api._services import Services

__all__ = ["DEFAULT_MEMO_TTL", "JSONMemo", "app_services", "json_response"]

DEFAULT_MEMO_TTL = 5.0
"""Seconds a rendered document is served before it is built again from the catalog."""

_MEMO_LIMIT = 4096


async def app_services(request: Request) -> Services:
    """FastAPI dependency: the app's services, without the thread hop a plain ``def`` costs."""
    return request.app.state.services  # type: ignore[no-any-return]


def json_response(body: bytes) -> Response:
    return Response(body, media_type="application/json")


class JSONMemo:
    """Rendered JSON bodies by key for ``ttl`` seconds, at most ``limit`` of them."""

    def __init__(
        self,
        ttl: float = DEFAULT_MEMO_TTL,
        limit: int = _MEMO_LIMIT,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.limit = limit
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= self._clock():
                return None
            return entry[1]

    def put(self, key: Hashable, body: bytes) -> None:
        with self._lock:
            self._entries[key] = (self._clock() + self.ttl, body)
            self._entries.move_to_end(key)
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)

    async def respond(self, key: Hashable, build: Callable[[], Any]) -> Response:
        """The remembered body for ``key``, else ``build()`` (in the thread pool) rendered.

        ``build`` returns the document, or a ``Response`` to send as it is and not remember
        (an answer that is not the document, such as upstream's ``{}`` for an unknown profile).
        """
        body = self.get(key)
        if body is None:
            document = await run_in_threadpool(build)
            if isinstance(document, Response):
                return document
            body = render_json(document)
            self.put(key, body)
        return json_response(body)
