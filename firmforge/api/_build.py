"""``POST /api/v1/build`` and ``GET|HEAD /api/v1/build/{hash}`` (research/asu-upstream.md §2.4).

An existing job answers at once (no validation, as upstream); a new request is validated
against the catalog (unknown packages refused before any build slot is spent), then queued.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from firmforge.api._hits import render_json
from firmforge.api._services import Services, services
from firmforge.api._stats import record_new
from firmforge.distributions import JOB_KEY
from firmforge.errors import (
    DefaultsNotAllowedError,
    NotFoundError,
    OverloadedError,
)
from firmforge.queue import JobView, Stage, client_status
from firmforge.repositories import FEEDS, check_request_repositories
from firmforge.request import BuildRequest, request_hash

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["build"])


def _timestamp(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def job_response(view: JobView, svc: Services) -> Response:
    """The body and headers for a job in any state; the body's ``status`` is the HTTP status."""
    common = {"enqueued_at": _timestamp(view.enqueued_at), "request_hash": view.request_hash}
    body: dict[str, Any]
    if view.status == "finished" and view.result is not None:
        rendered = render_json({**view.result, **common})
        svc.finished.put(view.request_hash, rendered)
        return Response(rendered, media_type="application/json", headers={
            "X-Imagebuilder-Status": Stage.DONE.value, "X-Queue-Position": "0"})
    if view.status == "failed" or view.stage == Stage.FAILED.value:
        failure = view.failure or {"detail": "Error: the build failed", "failed_stage": ""}
        body = {
            "detail": failure.get("detail", "Error: the build failed"),
            "imagebuilder_status": Stage.FAILED.value,
            "failed_stage": failure.get("failed_stage", ""),
            "request": view.request,
            "stdout": failure.get("stdout", ""),
            "stderr": failure.get("stderr", ""),
            "status": 500,
            **common,
        }
        stage, position = Stage.FAILED.value, 0
    elif view.status in ("queued", "deferred", "scheduled") or view.stage == Stage.QUEUED.value:
        body = {"status": 202, "detail": "queued", "queue_position": view.queue_position,
                **common}
        stage, position = Stage.QUEUED.value, view.queue_position
    else:
        stage, position = client_status(view.stage), 0
        body = {"detail": "started", "imagebuilder_status": stage, "request": view.request,
                "status": 202, **common}
    return JSONResponse(
        body,
        status_code=body["status"],
        headers={"X-Imagebuilder-Status": stage, "X-Queue-Position": str(position)},
    )


def result_ttl(request: BuildRequest, svc: Services) -> int:
    """How long a finished build is kept: upstream's TTL policy, shared by every route."""
    settings = svc.settings
    if request.defaults:
        return settings.build_defaults_ttl
    if request.packages_versions:
        return settings.build_ttl
    return settings.build_ttl_unversioned


def job_data(request: BuildRequest, svc: Services) -> dict[str, Any]:
    """What the job carries: the validated request and what its distribution adds."""
    data = request.model_dump(mode="json")
    additions = svc.distributions.get(request.distro).build_additions(
        request.version, request.target)
    if additions:
        data[JOB_KEY] = additions.as_json()
    return data


def _validated(request: BuildRequest, svc: Services) -> BuildRequest:
    """Upstream's 400 checks in upstream's order, then every package name (research §2.3).

    Extra ``repositories`` are checked second (allow-list, names, keys); their feeds are read
    last, so packages they provide are accepted and an unreachable one is a 400.
    """
    if request.defaults and not svc.settings.allow_defaults:
        raise DefaultsNotAllowedError()
    allow_list = svc.settings.repository_allow_list
    check_request_repositories(request.repositories, request.repository_keys, allow_list)
    distribution = svc.distributions.get(request.distro)
    catalog = svc.catalog
    distribution.check_version(request.version)
    catalog.check_target(request.version, request.target)
    profile = catalog.resolve_profile(request.version, request.target, request.profile)
    request = request.with_renames(catalog.renames_for(request.version))
    wanted = request.requested_packages
    if request.repositories:
        extra = FEEDS.names(request.repositories.values(), allow_list)
        wanted = [name for name in wanted if name not in extra]
    distribution.check_packages(request.version, request.target, wanted)
    return request.model_copy(update={"profile": profile})


@router.post("/build", response_model=None)
def build_post(
    raw: Annotated[dict[str, Any], Body()],
    http_request: Request,
    svc: Annotated[Services, Depends(services)],
) -> Response:
    """Request a build; 200 with images when done, 202 while queued or building."""
    try:
        request = svc.request_model.model_validate(raw).normalized()
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(), body=raw) from exc
    if request.client is None:
        agent = http_request.headers.get("user-agent", "")
        request = request.model_copy(update={"client": agent.split(" ")[0] or None})
    digest = request_hash(request)
    existing = svc.queue.fetch(digest)
    if existing is not None:
        return job_response(existing, svc)
    request = _validated(request, svc)
    if len(svc.queue) > svc.settings.max_pending_jobs:
        raise OverloadedError(len(svc.queue))
    view = svc.queue.enqueue(
        digest,
        job_data(request, svc),
        result_ttl=result_ttl(request, svc),
        failure_ttl=svc.settings.build_failure_ttl,
        job_timeout=svc.settings.job_timeout,
    )
    record_new(http_request, digest, request)  # a counter in memory, for /stats
    return job_response(view, svc)


@router.head("/build/{request_hash}", response_model=None, operation_id="build_head")
@router.get("/build/{request_hash}", response_model=None, operation_id="build_get")
def build_get(
    request_hash: str, svc: Annotated[Services, Depends(services)]
) -> Response:
    """The state of a build: 202 queued/started, 200 done, 500 failed, 404 unknown."""
    view = svc.queue.fetch(request_hash) if len(request_hash) <= 64 else None
    if view is None:
        raise NotFoundError("could not find provided request hash")
    return job_response(view, svc)
