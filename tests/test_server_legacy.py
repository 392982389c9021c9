"""A seed-era client against ``firmforge serve``: ``/image-request`` re-POSTed in the 2017 demo
loop (201 setting up, 206 building) until 200, then the image downloaded and checked."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import MirrorFixture
from tests.server_fixtures import RunningServer, firmforge_server, mirror_over_http

pytestmark = pytest.mark.slow

SEED = {"distro": "openwrt", "version": "24.10.5", "target": "ath79", "subtarget": "generic",
        "board": "tplink,archer-c7-v5", "packages": ["luci", "-ppp", "-ppp-mod-pppoe"]}


@pytest.fixture(scope="module")
def server(
    mirror: MirrorFixture, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with mirror_over_http(mirror.root) as url, firmforge_server(
        tmp_path_factory.mktemp("serve-legacy"), url, mirror.public_key, workers=1
    ) as running:
        yield running


def _demo_loop(client: httpx.Client, timeout: float = 180) -> tuple[httpx.Response, set[int]]:
    """``demo/image-request.sh``: POST the same request until it is no longer 201/206."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.post("/image-request", json=SEED)
        seen.add(response.status_code)
        if response.status_code == 201:
            assert response.json()["detail"] == "setting up imagebuilder - please wait"
        elif response.status_code == 206:
            assert response.json()["detail"] == "currently building - please wait"
        else:
            return response, seen
        time.sleep(0.25)
    raise TimeoutError("image-request still pending")


def test_seed_era_client_builds_and_downloads(server: RunningServer) -> None:
    with server.client() as client:
        done, seen = _demo_loop(client)
        assert done.status_code == 200, done.text
        assert seen & {201, 206}, seen  # it was pending at least once
        body = done.json()
        assert body["type"] == "sysupgrade"
        assert body["url"].startswith(server.url + "/store/")
        image = httpx.get(body["url"], timeout=30)
        assert image.status_code == 200
        assert len(image.content) == body["filesize"]
        assert hashlib.sha256(image.content).hexdigest() == body["checksum"]
        # the same build as a v1 client's request for that device and package list
        v1 = client.post("/api/v1/build", json={
            "version": "24.10.5", "target": "ath79/generic", "profile": "tplink,archer-c7-v5",
            "packages": SEED["packages"]})
        assert v1.status_code == 200, v1.text
        assert v1.json()["request_hash"] == body["request_hash"]
        assert any(i["name"] == body["name"] and i["sha256"] == body["checksum"]
                   for i in v1.json()["images"])
