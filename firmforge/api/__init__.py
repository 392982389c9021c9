"""The HTTP API: upstream ASU's v1 surface plus firmforge's own routes (FastAPI)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp

from firmforge import __version__
from firmforge.api import (
    _admin,
    _build,
    _downloads,
    _indexes,
    _key,
    _legacy,
    _overview,
    _reports,
    _store,
    _upgrade,
    _upload,
    _workers,
)
from firmforge.api._compat import CompatMiddleware
from firmforge.api._errors import install_error_handlers
from firmforge.api._farm import Farm
from firmforge.api._hits import CacheHitMiddleware
from firmforge.api._info import make_router as make_info_router
from firmforge.api._pages import install_pages
from firmforge.api._services import Services
from firmforge.api._stats import install_request_stats, lifespan
from firmforge.api._stats import router as stats_router

__all__ = ["Services", "create_app"]


class _App(FastAPI):
    """FastAPI with the compat layer outside everything, the framework's error pages included
    (middleware added with ``add_middleware`` sits inside them)."""

    def build_middleware_stack(self) -> ASGIApp:
        return CompatMiddleware(super().build_middleware_stack())


def create_app(services: Services, farm: Farm | None = None) -> FastAPI:
    """The app for these services (and the build farm's, on a server); nothing happens at
    import time."""
    app = _App(
        title="firmforge",
        version=__version__,
        description="Image-on-demand firmware for OpenWrt, compatible with Attended SysUpgrade.",
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.farm = farm
    install_error_handlers(app)
    app.include_router(_build.router)
    app.include_router(_store.router)
    app.include_router(_downloads.router)
    app.include_router(_reports.router)
    app.include_router(stats_router)
    app.include_router(_key.router)
    app.include_router(_overview.make_router())
    app.include_router(_indexes.make_router())
    app.include_router(_upgrade.make_router())
    app.include_router(make_info_router(services.store))
    app.include_router(_legacy.router)
    app.include_router(_workers.router)
    app.include_router(_upload.router)
    app.include_router(_admin.router)
    app.add_middleware(
        CacheHitMiddleware, responses=services.finished, request_model=services.request_model
    )
    install_request_stats(app, services)  # outside the cache hits, to count them
    install_pages(app)
    return app
