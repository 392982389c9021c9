"""Fixtures of the web tests: the app in process (pages, stats API), the databases of
``tests/db`` (SQLite, and PostgreSQL when ``FIRMFORGE_TEST_DATABASE_URL`` is set), and for the
browser tests a real ``firmforge serve`` on the synthetic mirror with Debian's Chromium."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from firmforge.config import Settings
from tests.browser import launch_chromium
from tests.conftest import LibremeshFeed, MirrorFixture
from tests.db.conftest import clock, database_url, db  # noqa: F401 -- shared fixtures
from tests.server_fixtures import (
    RunningServer,
    app_client,
    app_settings,
    firmforge_server,
    mirror_over_http,
    serve_directory,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(scope="module")
def mirror_url(mirror: MirrorFixture) -> Iterator[str]:
    with mirror_over_http(mirror.root) as url:
        yield url


@pytest.fixture(scope="module")
def settings(mirror: MirrorFixture, mirror_url: str, redis_url: str,
             tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return app_settings(tmp_path_factory.mktemp("web-data"), mirror_url, mirror.public_key,
                        redis_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app in process on an emptied Redis (no workers: builds stay queued)."""
    with app_client(settings) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def server(mirror: MirrorFixture, mirror_url: str, libremesh_feed: LibremeshFeed,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """``firmforge serve`` offering OpenWrt and LibreMesh, with one build worker; stopped
    (with its worker) afterwards."""
    with serve_directory(libremesh_feed.root) as feed_url:
        distributions = json.dumps([libremesh_feed.distribution(feed_url)])
        with firmforge_server(tmp_path_factory.mktemp("web-serve"), mirror_url,
                              mirror.public_key, workers=1,
                              extra_env={"FIRMFORGE_DISTRIBUTIONS": distributions}) as running:
            yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium (Playwright never downloads a browser)."""
    with launch_chromium() as chromium:
        yield chromium


class PageSession:
    """One browser page on one viewport that may talk to ``origin`` only.

    Every request is checked: one to anywhere else is aborted and reported; script errors
    and console errors (a Content-Security-Policy violation is one) are collected too.
    """

    def __init__(self, context: Any, origin: str, viewport: str) -> None:
        self.origin = origin
        self.viewport = viewport
        self.page = context.new_page()
        self.foreign: list[str] = []
        self.errors: list[str] = []
        self.allowed: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}")
                     if m.type == "error" else None)
        context.route("**/*", self._route)

    def _route(self, route: Any) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" == self.origin:
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def allow_http_error(self, status: int) -> None:
        """An answer with ``status`` is expected (Chromium logs every 4xx/5xx as an error)."""
        self.allowed.append(f"the server responded with a status of {status}")

    def goto(self, path: str) -> Any:
        return self.page.goto(self.origin + path)

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.viewport}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def check(self) -> None:
        assert self.foreign == [], f"requests left the firmforge origin: {self.foreign}"
        errors = [e for e in self.errors if not any(a in e for a in self.allowed)]
        assert errors == [], errors


@pytest.fixture
def open_page(browser: Any, server: RunningServer) -> Any:
    """``open_page(viewport)``: a context manager giving a checked ``PageSession``."""

    @contextmanager
    def opened(viewport: str = "desktop") -> Iterator[PageSession]:
        context = browser.new_context(viewport=VIEWPORTS[viewport], accept_downloads=True)
        session = PageSession(context, server.url, viewport)
        try:
            yield session
        except Exception:
            session.shot("failure")
            raise
        finally:
            context.close()
        session.check()

    return opened
