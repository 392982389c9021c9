"""The app in process: real embedded Redis, the synthetic mirror over HTTP, no workers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from firmforge.config import Settings
from tests.conftest import MirrorFixture
from tests.server_fixtures import app_client, app_settings, mirror_over_http


@pytest.fixture(scope="module")
def settings(
    mirror: MirrorFixture, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    with mirror_over_http(mirror.root) as url:
        yield app_settings(tmp_path_factory.mktemp("data"), url, mirror.public_key, redis_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A fresh app on an emptied Redis for each test."""
    with app_client(settings) as test_client:
        yield test_client
