"""``GET|HEAD /store/{bin_dir}/{file}``: built files, with no way out of the store.

Files are served from the local store (Starlette's ``FileResponse``: ``Range`` with one range
answers 206 with ``Content-Range``, several a multipart 206, an unsatisfiable one 416, and
``If-Range`` is honoured), or, with ``store_url`` set, answered with a 302 to
``<store_url>/store/<bin_dir>/<file>``. Either way the file must exist in the local store.

Every GET that delivers a file from its first byte counts as one download: a 200, or a 206
whose (single) range starts at byte 0; a redirect counts unless the request's ``Range`` starts
further in. Resumed or chunked downloads (ranges starting later, multipart ranges) and HEAD
are not counted, so one download fetched in pieces counts once. A download is counted when
its response starts, whether or not the client reads it to the end.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.types import Message, Receive, Scope, Send

from firmforge.api._services import Services, services
from firmforge.errors import NotFoundError

__all__ = ["router"]

router = APIRouter()

_TYPES = {".json": "application/json", ".manifest": "text/plain", ".sig": "text/plain"}
_FROM_START = re.compile(rb"^bytes 0-\d+/\d+$")
_RANGE_FROM_START = re.compile(r"^\s*bytes\s*=\s*0\s*-\s*\d*\s*$", re.IGNORECASE)


class _CountedFileResponse(FileResponse):
    """A ``FileResponse`` that calls ``on_download`` once it starts a download from byte 0."""

    def __init__(
        self,
        path: Path,
        *,
        media_type: str,
        filename: str,
        headers: dict[str, str],
        on_download: Callable[[], None],
    ) -> None:
        super().__init__(path, media_type=media_type, filename=filename, headers=headers)
        self._on_download = on_download

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and _is_download(message):
                self._on_download()
            await send(message)

        await super().__call__(scope, receive, counting_send)


def _is_download(start: Message) -> bool:
    if start["status"] == 200:
        return True
    if start["status"] != 206:
        return False
    content_range = dict(start.get("headers", ())).get(b"content-range", b"")
    return bool(_FROM_START.match(content_range))


def _redirect_counts(request: Request) -> bool:
    requested = request.headers.get("range")
    return requested is None or bool(_RANGE_FROM_START.match(requested))


@router.head("/store/{bin_dir}/{name}", tags=["store"], operation_id="store_head")
@router.get("/store/{bin_dir}/{name}", tags=["store"], operation_id="store_get")
def store_file(
    bin_dir: str, name: str, request: Request, svc: Annotated[Services, Depends(services)]
) -> Response:
    path = svc.store.file(bin_dir, name)  # checks both names: nothing outside the store
    if path is None:
        raise NotFoundError("Not found")
    counting = request.method == "GET"
    if svc.settings.store_url:
        if counting and _redirect_counts(request):
            svc.downloads.count(bin_dir, name)
        base = svc.settings.store_url.rstrip("/")
        return RedirectResponse(f"{base}/store/{bin_dir}/{name}", 302)
    media_type = _TYPES.get(path.suffix, "application/octet-stream")
    headers = {"X-Content-Type-Options": "nosniff"}
    if not counting:
        return FileResponse(path, media_type=media_type, filename=name, headers=headers)
    return _CountedFileResponse(
        path,
        media_type=media_type,
        filename=name,
        headers=headers,
        on_download=lambda: svc.downloads.count(bin_dir, name),
    )
