"""The HTTP API: upstream ASU's v1 surface plus firmforge's own routes (FastAPI)."""

from __future__ import annotations

from fastapi import FastAPI

from firmforge import __version__
from firmforge.api import _build, _store
from firmforge.api._errors import install_error_handlers
from firmforge.api._hits import CacheHitMiddleware
from firmforge.api._services import Services

__all__ = ["Services", "create_app"]


def create_app(services: Services) -> FastAPI:
    """The app for these services; nothing happens at import time."""
    app = FastAPI(
        title="firmforge",
        version=__version__,
        description="Image-on-demand firmware for OpenWrt, compatible with Attended SysUpgrade.",
    )
    app.state.services = services
    install_error_handlers(app)
    app.include_router(_build.router)
    app.include_router(_store.router)
    app.add_middleware(
        CacheHitMiddleware, responses=services.finished, request_model=services.request_model
    )
    return app
