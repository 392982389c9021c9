"""The web pages people look at, and the one JSON route they need beyond the API.

    GET /          what the server offers, its queue and workers, links to everything
    GET /request   request a build: version, device, packages, options; progress; images
    GET /stats     statistics charts (``/api/v1/stats/builds`` and ``/stats/downloads``)
    GET /workers   the build workers, refreshed from ``/api/v1/workers``
    GET /api/v1/devices/{version}   every device of a version: id, target, titles, boards
    GET /static/…  the pages' CSS and scripts, and the vendored chart library

Pages are rendered with Jinja2 (``firmforge.web``) and enhanced by small scripts served from
``/static``; a Content-Security-Policy allows nothing from elsewhere. The build-info page
``/builds/{hash}`` lives with its JSON twin in ``_info``.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from firmforge.api._downloads import MAX_DAYS
from firmforge.api._json import JSONMemo, app_services
from firmforge.api._services import Services, services
from firmforge.catalog import Catalog
from firmforge.errors import FirmforgeError
from firmforge.web import CHART_SCRIPT, STATIC_DIR, render

__all__ = ["STATS_WINDOWS", "device_list", "distributions", "install_pages"]

log = logging.getLogger(__name__)

STATS_WINDOWS = (7, 30, 90)
"""The windows (days) the statistics page offers."""

PAGE_HEADERS = {
    # scripts, styles and data from this server only; nothing inline, nothing from elsewhere
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


def _page(template: str, **context: Any) -> HTMLResponse:
    return HTMLResponse(render(template, **context), headers=PAGE_HEADERS)


def _default_version(versions: list[str], latest: list[str]) -> str | None:
    """The newest stable release: the first of ``latest`` (then of ``versions``) offered that
    is neither a release candidate nor a snapshot."""
    for version in [*(v for v in latest if v in versions), *versions]:
        if "-rc" not in version and "SNAPSHOT" not in version:
            return version
    return versions[0] if versions else None


def distributions(svc: Services) -> list[dict[str, Any]]:
    """Every distribution offered (as in the overview), each with the version to preselect."""
    return [
        {**entry, "default_version": _default_version(entry["versions"], entry["latest"])}
        for entry in (distribution.as_json() for distribution in svc.distributions)
    ]


def _offer(svc: Services) -> tuple[list[dict[str, Any]], str | None]:
    """The distributions, or none and why (the mirror may be unreachable)."""
    try:
        return distributions(svc), None
    except FirmforgeError as exc:
        log.warning("pages: could not read what the mirror offers: %s", exc.detail)
        return [], exc.detail


def _queue_length(svc: Services) -> int | None:
    try:
        return len(svc.queue)
    except Exception:  # Redis away: the page still renders
        log.exception("pages: could not read the queue length")
        return None


@router.get("/")
def home(svc: Annotated[Services, Depends(services)]) -> HTMLResponse:
    offered, problem = _offer(svc)
    return _page("home.html", current="home", distributions=offered, problem=problem,
                 queue_length=_queue_length(svc), settings=svc.settings)


@router.get("/request")
def request_page(svc: Annotated[Services, Depends(services)]) -> HTMLResponse:
    offered, problem = _offer(svc)
    return _page("request.html", current="request", distributions=offered, problem=problem,
                 settings=svc.settings)


@router.get("/stats")
def stats_page(
    days: Annotated[int, Query(ge=1, le=MAX_DAYS)] = 30,
) -> HTMLResponse:
    windows = sorted({*STATS_WINDOWS, days})
    return _page("stats.html", current="stats", days=days, windows=windows,
                 chart_script=CHART_SCRIPT if (STATIC_DIR / CHART_SCRIPT).is_file() else None)


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


@router.get("/workers")
def workers_page() -> HTMLResponse:
    return _page("workers.html", current="workers")


def device_list(catalog: Catalog, version: str) -> list[dict[str, Any]]:
    """Every device of ``version``, by target then id; a target whose profiles cannot be read
    is left out (logged), so one broken directory does not hide every device."""
    devices = []
    for target in sorted(catalog.targets(version)):
        try:
            profiles = catalog.profiles(version, target).get("profiles", {})
        except FirmforgeError as exc:
            log.warning("devices of %s: skipping %s: %s", version, target, exc.detail)
            continue
        for profile_id, profile in sorted(profiles.items()):
            devices.append({
                "id": profile_id,
                "target": target,
                "titles": profile.get("titles", []),
                "supported_devices": profile.get("supported_devices", []),
            })
    return devices


def _devices_router() -> APIRouter:
    """The device-list route, with its own memory of rendered lists (one per app)."""
    devices_router = APIRouter(tags=["overview"])
    memo = JSONMemo()

    @devices_router.get("/api/v1/devices/{version}", response_model=None)
    async def devices(
        version: str, svc: Annotated[Services, Depends(app_services)]
    ) -> Response:
        """Every device of a version: ``[{id, target, titles, supported_devices}]`` (the
        request page's device search); 400 for an unknown version."""
        return await memo.respond(("devices", version),
                                  lambda: device_list(svc.catalog, version))

    return devices_router


def install_pages(app: FastAPI) -> None:
    """The page routes and ``/static``; warns when the chart library was not installed."""
    if not (STATIC_DIR / CHART_SCRIPT).is_file():
        log.warning("no %s under %s: /stats shows tables without charts "
                    "(run `python -m firmforge.web.vendor`)", CHART_SCRIPT, STATIC_DIR)
    app.include_router(router)
    app.include_router(_devices_router())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
