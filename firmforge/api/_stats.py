"""Build-request statistics: recording them on the hot path, and ``GET /api/v1/stats/builds``.

Recording: ``POST /api/v1/build`` counts as ``new`` when it queued a build (the route calls
``record_new``), as ``cache_hit`` when a finished build answered (200) and as ``failed`` when a
failed one did (500 with ``X-Imagebuilder-Status: failed``). The last two are seen by
``RequestStatsMiddleware``, outside the cache-hit middleware, so the answers served from
memory count too; it reads the status and that header, and the hash from the body, and adds one
to a counter. A POST that finds its build still queued or building is a poll and not counted.

``GET /api/v1/stats/builds?days=N`` (1–90, default 30) is what the statistics page plots:
requests per day by outcome, build-time distribution, queue length over time, top devices and
added packages, versions in use and device reports per release.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from firmforge.api._downloads import MAX_DAYS
from firmforge.api._services import Services, services
from firmforge.build_stats import Defaults, RequestRecorder
from firmforge.catalog import Catalog
from firmforge.db._stats import BuildStats, build_stats
from firmforge.request import BuildRequest

__all__ = [
    "RequestStatsMiddleware",
    "install_request_stats",
    "lifespan",
    "record_new",
    "router",
    "stats_json",
]

log = logging.getLogger(__name__)

_BUILD_PATH = "/api/v1/build"
_STAGE_HEADER = b"x-imagebuilder-status"
_HASH_KEY = b'"request_hash":"'
_HASH = re.compile(rb"[0-9a-f]{64}")
_OUTCOMES: dict[tuple[int, bytes], str] = {(200, b"done"): "cache_hit",
                                           (500, b"failed"): "failed"}

router = APIRouter(tags=["stats"])


def _recorder(app: FastAPI) -> RequestRecorder:
    return app.state.request_stats  # type: ignore[no-any-return]


def record_new(http_request: Request, request_hash: str, request: BuildRequest) -> None:
    """The build route queued ``request``: one ``new`` request (memory only)."""
    release = request.model_dump(include={"distro", "version", "target", "profile", "packages"})
    _recorder(http_request.app).record(request_hash, "new", release)


class RequestStatsMiddleware:
    """Counts ``POST /api/v1/build`` answered by a finished or failed build (see the module)."""

    def __init__(self, app: ASGIApp, recorder: RequestRecorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != _BUILD_PATH:
            await self.app(scope, receive, send)
            return
        outcome: str | None = None

        async def observe(message: Message) -> None:
            nonlocal outcome
            if message["type"] == "http.response.start":
                stage = next((value for name, value in message.get("headers", ())
                              if name == _STAGE_HEADER), b"")
                outcome = _OUTCOMES.get((message["status"], stage))
            elif outcome is not None and message["type"] == "http.response.body":
                digest = _hash_in(message.get("body", b""))
                if digest is not None:
                    self.recorder.record(digest, outcome)
                outcome = None  # the hash is in the first chunk or not at all
            await send(message)

        await self.app(scope, receive, observe)


def _hash_in(body: bytes) -> str | None:
    """The ``request_hash`` of a build answer. It is the body's last key (a finished build's
    body carries the whole build log before it), so it is looked for from the end."""
    start = body.rfind(_HASH_KEY)
    if start < 0:
        return None
    start += len(_HASH_KEY)
    match = _HASH.match(body, start, start + 64)
    return match.group().decode() if match is not None else None


def _device_defaults(catalog: Catalog) -> Defaults:
    """The packages a device's image has without asking: the target's and the device's."""

    def defaults(version: str, target: str, profile: str) -> set[str]:
        profiles = catalog.profiles(version, target)
        device = profiles.get("profiles", {}).get(profile, {})
        return {*profiles.get("default_packages", ()), *device.get("device_packages", ())}

    return defaults


def install_request_stats(app: FastAPI, svc: Services) -> None:
    """Give ``app`` its request recorder and the middleware that feeds it; call it after the
    cache-hit middleware is added, so this one sits outside it and sees its answers."""
    recorder = RequestRecorder(svc.database, defaults=_device_defaults(svc.catalog))
    app.state.request_stats = recorder
    app.add_middleware(RequestStatsMiddleware, recorder=recorder)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Write the counts in the background while the server runs, the rest at shutdown."""
    recorder = _recorder(app)
    recorder.start(app.state.services.settings.stats_flush_interval)
    try:
        yield
    finally:
        await run_in_threadpool(recorder.stop)


@router.get("/api/v1/stats/builds", operation_id="stats_builds")
def builds(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    days: Annotated[int, Query(ge=1, le=MAX_DAYS, description="Days, today included.")] = 30,
    top: Annotated[int, Query(ge=1, le=100, description="Devices and packages listed.")] = 10,
) -> dict[str, Any]:
    """Build requests per day (new builds, cache hits, failures), build-time distribution,
    queue length over time, top devices and added packages, versions in use and device
    reports per release, over the last ``days`` UTC days."""
    recorder = _recorder(request.app)
    try:
        recorder.flush()
    except Exception:  # answer from what is stored; the flusher retries the rest
        log.exception("could not write build-request counts before reading them")
    last = recorder.today()
    first = last - timedelta(days=days - 1)
    return stats_json(build_stats(svc.database, first, last, top=top, now=datetime.now(UTC)))


def stats_json(stats: BuildStats) -> dict[str, Any]:
    """The JSON body for ``stats``."""
    return {
        "days": len(stats.per_day),
        "first": stats.first.isoformat(),
        "last": stats.last.isoformat(),
        "requests": {"total": sum(stats.totals.values()), **stats.totals},
        "per_day": [
            {"date": d.day.isoformat(), "requests": d.requests, "new": d.new,
             "cache_hits": d.cache_hits, "failed": d.failed}
            for d in stats.per_day
        ],
        "builds": {
            "done": stats.builds_done,
            "failed": stats.builds_failed,
            "median_seconds": stats.duration_quantiles["median"],
            "p90_seconds": stats.duration_quantiles["p90"],
            "durations": [{"bucket": label, "builds": n} for label, n in stats.durations],
        },
        "queue": {
            "bucket_seconds": stats.queue[0].seconds if stats.queue else None,
            "points": [
                {"time": p.start.isoformat(), "mean": p.mean, "max": p.max}
                for p in stats.queue
            ],
        },
        "devices": [{"target": t, "profile": p, "requests": n} for t, p, n in stats.devices],
        "packages": [{"name": name, "requests": n} for name, n in stats.packages],
        "versions": [{"distro": d, "version": v, "requests": n} for d, v, n in stats.versions],
        "reports": [
            {"version": v, "successes": s, "failures": f} for v, s, f in stats.reports
        ],
    }
