"""The HTTP API: upstream ASU's v1 surface plus firmforge's own routes (FastAPI)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp

from firmforge import __version__
from firmforge.api import (
    _build,
    _downloads,
    _indexes,
    _key,
    _legacy,
    _overview,
    _reports,
    _store,
    _upgrade,
)
from firmforge.api._compat import CompatMiddleware
from firmforge.api._errors import install_error_handlers
from firmforge.api._hits import CacheHitMiddleware
from firmforge.api._info import make_router as make_info_router
from firmforge.api._services import Services

__all__ = ["Services", "create_app"]


class _App(FastAPI):
    """FastAPI with the compat layer outside everything, the framework's error pages included
    (middleware added with ``add_middleware`` sits inside them)."""

    def build_middleware_stack(self) -> ASGIApp:
        return CompatMiddleware(super().build_middleware_stack())


def create_app(services: Services) -> FastAPI:
    """The app for these services; nothing happens at import time."""
    app = _App(
        title="firmforge",
        version=__version__,
        description="Image-on-demand firmware for OpenWrt, compatible with Attended SysUpgrade.",
    )
    app.state.services = services
    install_error_handlers(app)
    app.include_router(_build.router)
    app.include_router(_store.router)
    app.include_router(_downloads.router)
    app.include_router(_reports.router)
    app.include_router(_key.router)
    app.include_router(_overview.make_router())
    app.include_router(_indexes.make_router())
    app.include_router(_upgrade.make_router())
    app.include_router(make_info_router(services.store))
    app.include_router(_legacy.router)
    app.add_middleware(
        CacheHitMiddleware, responses=services.finished, request_model=services.request_model
    )
    return app
