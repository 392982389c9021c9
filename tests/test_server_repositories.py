"""End to end: ``firmforge serve`` builds with an extra, separately signed feed served over HTTP
(``repositories`` + ``repository_keys`` + ``repositories_mode``), and a wrong key fails the build
with a clear reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import MirrorFixture
from tests.server_fixtures import (
    RunningServer,
    firmforge_server,
    mirror_over_http,
    poll_build,
    serve_directory,
)
from tests.test_repositories import (
    EXTRA_PACKAGE,
    ExtraFeed,
    make_extra_feed,
    new_key,
)

pytestmark = pytest.mark.slow

REQUEST = {"version": "24.10.5", "target": "ath79/generic", "profile": "tplink,archer-c7-v5"}


@dataclass(frozen=True)
class Served:
    feed: ExtraFeed
    url: str


@pytest.fixture(scope="module")
def extra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("extra-feeds")
    feed = make_extra_feed(root / "feed")
    with serve_directory(root) as base:
        yield Served(feed=feed, url=f"{base}/feed")


@pytest.fixture(scope="module")
def server(
    mirror: MirrorFixture, extra: Served, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    allow = json.dumps([extra.url])
    with (
        mirror_over_http(mirror.root) as mirror_url,
        firmforge_server(tmp_path_factory.mktemp("serve"), mirror_url, mirror.public_key,
                         workers=1,
                         extra_env={"FIRMFORGE_REPOSITORY_ALLOW_LIST": allow}) as running,
    ):
        yield running


def _build(server: RunningServer, request: dict[str, object]) -> dict[str, object]:
    with server.client() as client:
        posted = client.post("/api/v1/build", json=request)
        assert posted.status_code in (200, 202), posted.text
        body: dict[str, object] = posted.json()
        if posted.status_code == 202:
            body = poll_build(client, str(body["request_hash"])).json()
        return body


def test_build_with_an_extra_signed_feed(server: RunningServer, extra: Served) -> None:
    body = _build(server, {
        **REQUEST,
        "packages": [EXTRA_PACKAGE],
        "repositories": {"extra": extra.url},
        "repository_keys": [extra.feed.public_key_line],
        "repositories_mode": "append",
    })
    assert body["status"] == 200, body
    manifest = body["manifest"]
    assert isinstance(manifest, dict)
    assert manifest[EXTRA_PACKAGE] == "1.0-r1"
    assert "busybox" in manifest  # the ImageBuilder's own feeds are still there (append)
    assert f"PACKAGES={EXTRA_PACKAGE}" in body["build_cmd"]  # type: ignore[operator]
    # the extra feed's files stay out of the ImageBuilder's shared download pool
    pooled = [p.name for p in (server.data_dir / "imagebuilders").glob("*.dl/*")]
    assert not [name for name in pooled if name.startswith(EXTRA_PACKAGE)], pooled


def test_a_wrong_key_fails_the_build_saying_why(server: RunningServer, extra: Served) -> None:
    body = _build(server, {
        **REQUEST,
        "packages": [EXTRA_PACKAGE],
        "repositories": {"extra": extra.url},
        "repository_keys": [new_key().public_key.to_text()],
        "repositories_mode": "append",
    })
    assert body["status"] == 500, body
    assert body["failed_stage"] == "building_image"
    detail = str(body["detail"])
    assert detail.startswith(
        f"Error: Signature check failed for repository extra ({extra.url}): its Packages.sig "
        "is not signed by any key in repository_keys"), detail
    assert EXTRA_PACKAGE in detail  # and what that cost: the package could not be found
    assert "Signature check failed." in str(body["stderr"])


def test_feeds_not_on_the_allow_list_are_refused(server: RunningServer, extra: Served) -> None:
    outside = extra.url + "x"
    with server.client() as client:
        response = client.post("/api/v1/build", json={
            **REQUEST, "packages": [EXTRA_PACKAGE], "repositories": {"extra": outside}})
    assert response.status_code == 400
    assert response.json() == {"detail": f"Repository not allowed: {outside}", "status": 400}
