"""The seed-era (GSoC 2017) endpoints, for old scripts: ``POST /update-request`` and
``POST /image-request`` (research/asu-upstream.md §5.2).

Both are mapped onto today's machinery: ``/update-request`` onto the catalog-only upgrade check
(``firmforge.api._upgrade.UpgradeCheck``), ``/image-request`` onto the very jobs of
``POST /api/v1/build``. The old body (``distro, version, target, subtarget, board[, model],
packages``) becomes a ``BuildRequest`` with ``target = "{target}/{subtarget}"`` and
``profile = board`` (or the profile the ``model`` names when the board is unknown), hashed with
upstream's ``request_hash`` exactly as the v1 route hashes it, so a v1 client and a seed-era
client asking for the same build share one job.

Answers, as in 2017 (the client re-POSTs the identical request while it waits):

    201  queued (the era's "ImageBuilder being set up")  "setting up imagebuilder - please wait"
    206  building                                         "currently building - please wait"
    200  done: {"url", "checksum" (sha256), "filesize", …} of the sysupgrade (or first) image
    400  refused: {"error": <the era's text>, "detail": <the same>}
    500  the build failed: {"error": <why>, "detail": <why>, …}
    503  the queue is full

Error bodies carry the era's ``error`` key and, for consistency with the rest of the API, the
same text as ``detail``; every JSON body also carries ``status`` (the HTTP status).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.concurrency import run_in_threadpool

from firmforge.api._build import job_data, job_response, result_ttl
from firmforge.api._json import app_services
from firmforge.api._services import Services
from firmforge.api._upgrade import UpgradeCheck
from firmforge.errors import (
    FirmforgeError,
    OverloadedError,
    UnknownPackagesError,
    UnsupportedError,
)
from firmforge.queue import JobView, Stage, client_status
from firmforge.request import PKG_VERSION, STRING, BuildRequest, request_hash

__all__ = ["DISTRO_ALIASES", "LegacyError", "router"]

router = APIRouter(tags=["legacy"])

_M = TypeVar("_M", bound=BaseModel)

DISTRO_ALIASES: Mapping[str, str] = {"openwrt": "openwrt", "lede": "openwrt"}
"""Distribution names of the era (``LEDE`` in 2017, matched case-insensitively) → ours."""

_IMAGE_PARAMS = "missing parameters - need distro version target subtarget board"
_UPDATE_PARAMS = "missing parameters - need distro version target subtarget"

Name = Annotated[str, StringConstraints(pattern=STRING, max_length=200)]
PackageVersion = Annotated[str, StringConstraints(pattern=PKG_VERSION, max_length=200)]
Part = Annotated[str, StringConstraints(pattern=r"^\w+$", max_length=100)]


class LegacyError(Exception):
    """A seed-era error answer: ``status`` with the era's text in ``error`` and ``detail``."""

    def __init__(self, status: int, text: str, **extra: Any) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.extra = extra

    def response(self) -> JSONResponse:
        body = {"error": self.text, "detail": self.text, "status": self.status, **self.extra}
        return JSONResponse(body, status_code=self.status)


class _Device(BaseModel):
    """The fields both seed-era requests share. Unknown fields are ignored, as then."""

    model_config = ConfigDict(extra="ignore")

    distro: Name
    version: Name
    target: Part
    subtarget: Part


class _UpdateRequest(_Device):
    packages: dict[Name, PackageVersion] = Field(default_factory=dict)
    update_packages: bool = False
    upgrade_packages: bool = False  # the late-2017 name of the same flag
    board: Name | None = None


class _ImageRequest(_Device):
    board: Name
    model: str | None = Field(None, max_length=200)
    packages: list[Name] | dict[Name, PackageVersion] = Field(default_factory=list)
    network_profile: str | None = None

    @property
    def package_names(self) -> list[str]:
        return list(self.packages)


def _parse(raw: bytes, model: type[_M], missing: str) -> _M:
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise LegacyError(400, "bad request - body is not JSON") from exc
    if not isinstance(body, dict):
        raise LegacyError(400, "bad request - body is not a JSON object")
    required = [name for name, info in model.model_fields.items() if info.is_required()]
    if any(body.get(name) in (None, "") for name in required):
        raise LegacyError(400, missing)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        fields = sorted({str(error["loc"][0]) for error in exc.errors() if error["loc"]})
        raise LegacyError(400, f"bad request - invalid {', '.join(fields) or 'body'}") from exc


def _distro(svc: Services, name: str) -> str:
    """Today's name of the distribution (``lede`` was OpenWrt's), or the era's 400."""
    distro = DISTRO_ALIASES.get(name.lower(), name.lower())
    if distro not in svc.distributions:
        raise LegacyError(400, f"unknown distribution {name}")
    return distro


def _check_release_and_target(svc: Services, device: _Device) -> str:
    """``target/subtarget`` once the version and target are known (the era's 400 texts)."""
    target = f"{device.target}/{device.subtarget}"
    try:
        svc.distributions.get(_distro(svc, device.distro)).check_version(device.version)
    except UnsupportedError as exc:
        raise LegacyError(400, f"unknown release {device.version}") from exc
    try:
        svc.catalog.check_target(device.version, target)
    except UnsupportedError as exc:
        raise LegacyError(400, f"unknown target {target}") from exc
    return target


# -- /update-request -----------------------------------------------------------------------


def _update(svc: Services, raw: bytes) -> Response:
    request = _parse(raw, _UpdateRequest, _UPDATE_PARAMS)
    target = _check_release_and_target(svc, request)
    check = UpgradeCheck(svc.distributions.get(_distro(svc, request.distro)))
    context = check.context(request.version, target)
    answer = check.answer(context, request.board or "", request.packages)
    offer = answer["stable"] or answer["upgrade"]
    if offer is not None:
        renames = {change["source"]: change["target"] for change in offer["package_changes"]}
        packages = sorted({renames.get(name, name) for name in request.packages})
        body: dict[str, Any] = {
            "version": offer["version"],
            "updates": {},
            "packages": packages,
            "upgrade": answer["upgrade"],
            "stable": answer["stable"],
        }
    elif answer["package_updates"] and (request.update_packages or request.upgrade_packages):
        updates = {u["name"]: [u["available"], u["installed"]] for u in answer["package_updates"]}
        body = {"updates": updates, "packages": sorted(request.packages)}
    else:
        return Response(status_code=204)
    return JSONResponse({**body, "status": 200, "detail": "update available"})


# -- /image-request ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Build:
    """A seed-era image request as today's build request, and its v1 request hash."""

    request: BuildRequest
    digest: str


def _as_build(svc: Services, request: _ImageRequest, profile: str, client: str | None) -> _Build:
    build = svc.request_model(
        distro=_distro(svc, request.distro),
        version=request.version,
        target=f"{request.target}/{request.subtarget}",
        profile=profile,
        packages=request.package_names,
        client=client,
    ).normalized()
    return _Build(build, request_hash(build))


def _resolve_profile(svc: Services, request: _ImageRequest, target: str) -> tuple[str, str]:
    """(profile as to hash, canonical id): the board as sent if known, else the model's."""
    for candidate in (request.board, request.model):
        if not candidate:
            continue
        try:
            found = svc.catalog.resolve_profile(request.version, target, candidate)
        except UnsupportedError:
            continue
        return (request.board if candidate == request.board else found), found
    raise LegacyError(400, f"unknown board: {request.board}/{request.model or ''}")


def _validated(svc: Services, request: _ImageRequest, client: str | None) -> _Build:
    """The v1 checks (catalog) in the era's order and words; the job's request as v1's."""
    target = _check_release_and_target(svc, request)
    hashed_profile, profile = _resolve_profile(svc, request, target)
    build = _as_build(svc, request, hashed_profile, client)
    renamed = build.request.with_renames(svc.catalog.renames_for(request.version))
    try:
        svc.distributions.get(build.request.distro).check_packages(
            request.version, target, renamed.requested_packages)
    except UnknownPackagesError as exc:
        first = exc.unknown[0]
        raise LegacyError(400, f"could not find package {first} for requested target",
                          unknown_packages=exc.unknown) from exc
    return _Build(renamed.model_copy(update={"profile": profile}), build.digest)


def _image(view: JobView, svc: Services, base_url: str) -> Response:
    """The era's answer for a job in any state."""
    headers = {"X-Imagebuilder-Status": Stage.QUEUED.value,
               "X-Queue-Position": str(view.queue_position)}
    common = {"request_hash": view.request_hash}
    if view.status == "finished" and view.result is not None:
        job_response(view, svc)  # remembers the finished v1 answer, as the v1 route does
        return _done(view, svc, base_url)
    if view.status == "failed" or view.stage == Stage.FAILED.value:
        failure = view.failure or {}
        text = str(failure.get("detail") or "imagebuilder failed to create image")
        raise LegacyError(500, text, failed_stage=failure.get("failed_stage", ""), **common)
    if view.status in ("queued", "deferred", "scheduled") or view.stage == Stage.QUEUED.value:
        body = {"status": 201, "detail": "setting up imagebuilder - please wait",
                "queue": view.queue_position, **common}
        return JSONResponse(body, status_code=201, headers=headers)
    headers = {"X-Imagebuilder-Status": client_status(view.stage), "X-Queue-Position": "0"}
    body = {"status": 206, "detail": "currently building - please wait", **common}
    return JSONResponse(body, status_code=206, headers=headers)


def _done(view: JobView, svc: Services, base_url: str) -> Response:
    result = view.result or {}
    images: list[dict[str, Any]] = list(result.get("images") or [])
    bin_dir = str(result.get("bin_dir") or view.request_hash)
    if not images:
        raise LegacyError(500, "No sysupgrade file produced, may not supported by model.",
                          request_hash=view.request_hash)
    image = next((i for i in images if i.get("type") == "sysupgrade"), images[0])
    name = str(image["name"])
    size = image.get("size")
    if size is None:
        path = svc.store.file(bin_dir, name)
        size = path.stat().st_size if path is not None else None
    body = {
        "url": f"{base_url}/store/{bin_dir}/{name}",
        "checksum": image.get("sha256"),
        "filesize": size,
        "name": name,
        "type": image.get("type"),
        "bin_dir": bin_dir,
        "request_hash": view.request_hash,
        "status": 200,
        "detail": "done",
    }
    return JSONResponse(body, headers={"X-Imagebuilder-Status": Stage.DONE.value,
                                       "X-Queue-Position": "0"})


def _image_request(svc: Services, raw: bytes, base_url: str, client: str | None) -> Response:
    request = _parse(raw, _ImageRequest, _IMAGE_PARAMS)
    if request.network_profile:
        raise LegacyError(400, f'network profile "{request.network_profile}" not found')
    # An existing job answers at once, as on v1 (same hash as a v1 request for the board).
    existing = svc.queue.fetch(_as_build(svc, request, request.board, client).digest)
    if existing is not None:
        return _image(existing, svc, base_url)
    build = _validated(svc, request, client)
    existing = svc.queue.fetch(build.digest)  # the model named another profile
    if existing is not None:
        return _image(existing, svc, base_url)
    if len(svc.queue) > svc.settings.max_pending_jobs:
        raise LegacyError(503, OverloadedError(len(svc.queue)).detail)
    view = svc.queue.enqueue(
        build.digest,
        job_data(build.request, svc),
        result_ttl=result_ttl(build.request, svc),
        failure_ttl=svc.settings.build_failure_ttl,
        job_timeout=svc.settings.job_timeout,
    )
    return _image(view, svc, base_url)


# -- routes --------------------------------------------------------------------------------


def _answer(call: Any, *args: Any) -> Response:
    try:
        return call(*args)  # type: ignore[no-any-return]
    except LegacyError as exc:
        return exc.response()
    except OverloadedError as exc:
        return LegacyError(503, exc.detail).response()
    except FirmforgeError as exc:
        return LegacyError(exc.status_code, exc.detail).response()


@router.post("/update-request", response_model=None)
async def update_request(
    http_request: Request, svc: Annotated[Services, Depends(app_services)]
) -> Response:
    """Seed-era (2017) update check: `{distro, version, target, subtarget, packages:
    {name: version}[, update_packages]}`. 200 `{"version": newest release, "packages": [names
    after renames], "updates": {}}` when a newer release exists; with `update_packages`, 200
    `{"updates": {name: [available, installed]}}` when only packages are newer; otherwise 204.
    400 `{"error"}` with the era's texts."""
    raw = await http_request.body()
    return await run_in_threadpool(_answer, _update, svc, raw)


@router.post("/image-request", response_model=None)
async def image_request(
    http_request: Request, svc: Annotated[Services, Depends(app_services)]
) -> Response:
    """Seed-era (2017) image request: `{distro, version, target, subtarget, board[, model],
    packages: [names]}`, re-POSTed until done. The same job as `POST /api/v1/build` for that
    target/profile/packages. 201 queued, 206 building, 200 `{"url", "checksum" (sha256),
    "filesize"}` of the sysupgrade (or first) image, 400 `{"error"}` with the era's texts,
    500 build failed, 503 queue full."""
    raw = await http_request.body()
    base_url = str(http_request.base_url).rstrip("/")
    agent = http_request.headers.get("user-agent", "").split(" ")[0] or None
    return await run_in_threadpool(_answer, _image_request, svc, raw, base_url, agent)
