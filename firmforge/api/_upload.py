"""The routes remote workers call with their token (``firmforge worker``).

``GET /api/v1/worker/config``
    What a worker needs to build: the mirror, its trusted keys, the time limits.
``POST /api/v1/worker/records/{operation}``
    The build records a worker keeps (``firmforge.builder.BuildRecords``), written to the
    server's database.
``PUT /api/v1/worker/builds/{request_hash}``
    A finished build as an uncompressed tar of its files, with ``X-Content-SHA256`` of the
    body. Only for a job that is running. The body is written under a dot-name in the store
    (never served, never collected), its digest and the ImageBuilder's own ``sha256sums`` are
    checked, the images are signed with the server's key (which never leaves the server) and
    the build is published atomically; the answer is the signed ``profiles.json``. Anything
    short of that leaves nothing visible.
"""

from __future__ import annotations

import errno
import hashlib
import json
import re
import shutil
import tarfile
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from firmforge.api._farm import Farm, farm, worker_token
from firmforge.api._services import Services, services
from firmforge.errors import FirmforgeError, NotFoundError
from firmforge.signing import sign_build
from firmforge.store import LocalStore, is_bin_dir
from firmforge.usign import read_public_key

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/worker", tags=["workers"],
                   dependencies=[Depends(worker_token)])

MAX_UPLOAD_BYTES = 16 * 2**30
"""The largest build a worker may upload (a whole x86 build with its images is far less)."""

_CHUNK = 1 << 20
_SUMS_LINE = re.compile(r"^([0-9a-f]{64}) [ *](\S+)$")
_RECORD_OPERATIONS = frozenset(
    {"record_queued", "record_started", "record_stage", "record_done", "record_failed"})


class BadUploadError(FirmforgeError):
    status_code = 400


class NotRunningError(FirmforgeError):
    status_code = 409


class UploadTooLargeError(FirmforgeError):
    status_code = 413


class DiskFullError(FirmforgeError):
    status_code = 507


@router.get("/config")
def worker_config(svc: Annotated[Services, Depends(services)]) -> dict[str, Any]:
    settings = svc.settings
    return {
        "upstream_url": settings.upstream_url,
        "upstream_keys": [read_public_key(path).to_text() for path in settings.upstream_key],
        "stage_timeout": settings.stage_timeout,
        "job_timeout": settings.job_timeout,
    }


@router.post("/records/{operation}")
def worker_record(
    operation: str,
    arguments: Annotated[dict[str, Any], Body()],
    svc: Annotated[Services, Depends(services)],
) -> dict[str, Any]:
    if operation not in _RECORD_OPERATIONS:
        raise NotFoundError(f"no record operation {operation!r}")
    if arguments.get("enqueued_at"):
        arguments["enqueued_at"] = datetime.fromisoformat(arguments["enqueued_at"])
    try:
        return {"result": getattr(svc.database, operation)(**arguments)}
    except TypeError as exc:
        raise BadUploadError(f"bad arguments for {operation}: {exc}") from exc


@router.put("/builds/{request_hash}")
async def worker_upload(
    request_hash: str,
    request: Request,
    x_content_sha256: Annotated[str, Header()],
    svc: Annotated[Services, Depends(services)],
    the_farm: Annotated[Farm, Depends(farm)],
) -> JSONResponse:
    if not is_bin_dir(request_hash):
        raise NotFoundError("not a request hash")
    view = await run_in_threadpool(svc.queue.fetch, request_hash)
    if view is None or view.status != "started":
        raise NotRunningError(f"no build of {request_hash} is running")
    staging = Path(tempfile.mkdtemp(prefix=".upload.", dir=svc.store.root))
    try:
        archive = staging / "upload.tar"
        digest = hashlib.sha256()
        size = 0
        with archive.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise UploadTooLargeError(f"upload over {MAX_UPLOAD_BYTES} bytes")
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != x_content_sha256.strip().lower():
            raise BadUploadError("the upload does not match its X-Content-SHA256: damaged "
                                 "or cut short on the way; send it again")
        profiles = await run_in_threadpool(_accept, archive, staging / "files", request_hash,
                                           svc.store, the_farm)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFullError("the server's disk is full; the build cannot be stored") from exc
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return JSONResponse(profiles)


def _accept(archive: Path, files: Path, request_hash: str, store: LocalStore, the_farm: Farm
            ) -> dict[str, Any]:
    """Unpack, check, sign and publish an uploaded build; its ``profiles.json``."""
    files.mkdir()
    _unpack(archive, files)
    archive.unlink()
    _check_sums(files)
    if not (files / "profiles.json").is_file():
        raise BadUploadError("the upload holds no profiles.json")
    if the_farm.signing_key is not None:
        profiles = sign_build(files, the_farm.signing_key)
    else:
        profiles = json.loads((files / "profiles.json").read_text())
    store.publish(request_hash, files)
    return profiles  # type: ignore[no-any-return]


def _unpack(archive: Path, files: Path) -> None:
    """Regular files with plain names only: nothing an upload says can leave ``files``."""
    try:
        with tarfile.open(archive, "r:") as tar:
            for member in tar:
                if not member.isreg() or Path(member.name).name != member.name \
                        or member.name.startswith("."):
                    raise BadUploadError(f"refusing upload entry {member.name!r}")
                source = tar.extractfile(member)
                if source is None:
                    raise BadUploadError(f"unreadable upload entry {member.name!r}")
                with source, (files / member.name).open("xb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
    except (tarfile.TarError, FileExistsError) as exc:
        raise BadUploadError(f"the upload is not a valid tar of files: {exc}") from exc


def _check_sums(files: Path) -> None:
    """Every file the ImageBuilder's ``sha256sums`` lists must have arrived intact."""
    sums = files / "sha256sums"
    if not sums.is_file():
        raise BadUploadError("the upload holds no sha256sums")
    for line in sums.read_text().splitlines():
        match = _SUMS_LINE.match(line.strip())
        if match is None:
            continue
        expected, name = match.groups()
        path = files / name
        if Path(name).name != name or not path.is_file():
            raise BadUploadError(f"{name} is listed in sha256sums but was not uploaded")
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            raise BadUploadError(f"{name} does not match its sha256sums entry")
