"""``GET /api/v1/build/{hash}/info`` and the page ``GET /builds/{hash}``: what a build was.

Everything needed to reproduce a build with the same ImageBuilder, from the newest build
record and the store: the request, status, the ImageBuilder (name, its SHA256 as the mirror's
signed ``sha256sums`` lists it and the worker verified, the revision from the build's
``profiles.json``), the full manifest, the exact ``make image`` command, every stored file
with its size and SHA256, the signature over ``sha256sums``, stage timings and the worker.

Stored files never change once published (a rebuild publishes a new directory), so their
digests are computed once per directory and kept in memory.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, JSONResponse

from firmforge.api._services import Services, services
from firmforge.db import BuildRecord
from firmforge.errors import NotFoundError
from firmforge.signing import SUMS, SUMS_SIG, public_key
from firmforge.store import LocalStore
from firmforge.upstream import Upstream
from firmforge.usign import UsignError
from firmforge.web import render

__all__ = ["ArtifactDigests", "build_info", "make_router"]

_HASH = re.compile(r"^[0-9a-f]{64}$")
_NOT_FOUND = "Unknown build"
_DIGEST_ENTRIES = 1024
_PAGE_HEADERS = {
    # the page loads nothing: no scripts at all, only its own inline style
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Artifact:
    name: str
    size: int
    sha256: str


class ArtifactDigests:
    """The files of a store directory with size and SHA256, computed once per directory.

    Keyed by the directory's name, inode and mtime: a rebuild of the same request publishes a
    new directory (a rename), so it is read afresh. At most ``limit`` directories are kept.
    """

    def __init__(self, store: LocalStore, limit: int = _DIGEST_ENTRIES) -> None:
        self.store = store
        self.limit = limit
        self._entries: OrderedDict[tuple[str, int, int], tuple[Artifact, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, bin_dir: str) -> tuple[Artifact, ...]:
        if not self.store.has(bin_dir):
            return ()
        directory = self.store.root / bin_dir
        try:
            stat = directory.stat()
        except OSError:
            return ()
        key = (bin_dir, stat.st_ino, stat.st_mtime_ns)
        with self._lock:
            known = self._entries.get(key)
            if known is not None:
                self._entries.move_to_end(key)
                return known
        artifacts = tuple(_digest(path) for path in _files(directory))
        with self._lock:
            self._entries[key] = artifacts
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)
        return artifacts


def _files(directory: Path) -> list[Path]:
    try:
        entries = list(directory.iterdir())
    except OSError:
        return []
    files = [p for p in entries if p.is_file() and not p.is_symlink()]
    return sorted(files, key=lambda p: p.name.encode())


def _digest(path: Path) -> Artifact:
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return Artifact(name=path.name, size=path.stat().st_size, sha256=digest)


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _profiles(directory: Path) -> dict[str, Any]:
    text = _read_text(directory / "profiles.json")
    if text is None:
        return {}
    try:
        document = json.loads(text)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _imagebuilder(record: BuildRecord, profiles: dict[str, Any], svc: Services) -> dict[str, Any]:
    stored = record.imagebuilder or {}
    name = stored.get("name")
    directory = f"{Upstream.version_path(record.version)}/targets/{record.target}"
    base = svc.settings.upstream_url.rstrip("/")
    return {
        "name": name,
        "sha256": stored.get("sha256"),
        "revision": profiles.get("version_code"),
        "url": f"{base}/{directory}/{name}" if name else None,
        "sha256sums_url": f"{base}/{directory}/sha256sums",
    }


def _signature(directory: Path | None, svc: Services) -> dict[str, Any]:
    public = public_key(svc.settings.signing_key_path)
    sums = _read_text(directory / SUMS) if directory else None
    signature = _read_text(directory / SUMS_SIG) if directory else None
    verified: bool | None = None
    if public is not None and sums is not None and signature is not None:
        try:
            public.verify(sums.encode(), signature)
            verified = True
        except UsignError:
            verified = False
    return {
        "sha256sums": sums,
        "sha256sums_sig": signature,
        "key_fingerprint": public.fingerprint_hex if public is not None else None,
        "public_key_url": "/api/v1/key",
        "verified": verified,
    }


def build_info(request_hash: str, svc: Services, digests: ArtifactDigests) -> dict[str, Any]:
    """The info document of the newest build of ``request_hash``; ``NotFoundError`` if none."""
    if not _HASH.fullmatch(request_hash):
        raise NotFoundError(_NOT_FOUND)
    record = svc.database.latest_build(request_hash)
    if record is None:
        raise NotFoundError(_NOT_FOUND)
    bin_dir = record.bin_dir
    directory = svc.store.root / bin_dir if bin_dir and svc.store.has(bin_dir) else None
    artifacts = digests.of(bin_dir) if directory is not None and bin_dir else ()
    profiles = _profiles(directory) if directory is not None else {}
    build_cmd = record.build_cmd
    return {
        "request_hash": request_hash,
        "request": record.request,
        "status": record.status.value,
        "stage": record.stage,
        "detail": record.detail,
        "distro": record.distro,
        "version": record.version,
        "target": record.target,
        "profile": record.profile,
        "packages": record.packages,
        "imagebuilder": _imagebuilder(record, profiles, svc),
        "manifest": record.manifest,
        "build_cmd": build_cmd,
        "build_cmd_shell": shlex.join(build_cmd) if build_cmd else None,
        "bin_dir": bin_dir,
        "images": record.images,
        "artifacts": [
            {"name": a.name, "size": a.size, "sha256": a.sha256,
             "url": f"/store/{bin_dir}/{a.name}"}
            for a in artifacts
        ],
        "signature": _signature(directory, svc),
        "stage_timings": record.stage_timings,
        "worker": record.worker,
        "enqueued_at": _time(record.enqueued_at),
        "started_at": _time(record.started_at),
        "finished_at": _time(record.finished_at),
        "duration_seconds": record.duration_seconds,
    }


def make_router(store: LocalStore) -> APIRouter:
    """The routes, with one digest cache for this app's store."""
    router = APIRouter(tags=["build"])
    digests = ArtifactDigests(store)

    @router.get("/api/v1/build/{request_hash}/info", response_model=None)
    def info(
        request_hash: str, svc: Annotated[Services, Depends(services)]
    ) -> JSONResponse:
        """Everything about the newest build of a request: enough to reproduce it."""
        return JSONResponse(build_info(request_hash, svc, digests))

    @router.get("/builds/{request_hash}", response_model=None, include_in_schema=False)
    def page(
        request_hash: str, svc: Annotated[Services, Depends(services)]
    ) -> HTMLResponse:
        try:
            document = build_info(request_hash, svc, digests)
        except NotFoundError as exc:
            body = render("not_found.html", detail=exc.detail, request_hash=request_hash)
            return HTMLResponse(body, status_code=404, headers=_PAGE_HEADERS)
        body = render(
            "build.html",
            info=document,
            request_json=json.dumps(document["request"], indent=2, sort_keys=True),
        )
        return HTMLResponse(body, headers=_PAGE_HEADERS)

    return router
