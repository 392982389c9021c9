"""End to end: one ``firmforge serve`` builds OpenWrt and LibreMesh images side by side.

LibreMesh builds with OpenWrt's ImageBuilder, its own feeds (served over HTTP by a second host,
signed by a second key) and its default packages, which remove ``dnsmasq`` so that
``lime-proto-anygw`` can pull in ``dnsmasq-full``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest

from tests.conftest import LibremeshFeed, MirrorFixture
from tests.server_fixtures import (
    RunningServer,
    firmforge_server,
    mirror_over_http,
    poll_build,
    serve_directory,
)

pytestmark = pytest.mark.slow

DEVICE = {"version": "24.10.5", "target": "ath79/generic", "profile": "tplink,archer-c7-v5"}


@pytest.fixture(scope="module")
def server(mirror: MirrorFixture, libremesh_feed: LibremeshFeed,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with (
        mirror_over_http(mirror.root) as mirror_url,
        serve_directory(libremesh_feed.root) as feed_url,
    ):
        distributions = json.dumps([libremesh_feed.distribution(feed_url)])
        with firmforge_server(tmp_path_factory.mktemp("serve"), mirror_url, mirror.public_key,
                              workers=1,
                              extra_env={"FIRMFORGE_DISTRIBUTIONS": distributions}) as running:
            yield running


def _build(server: RunningServer, body: dict[str, object]) -> dict[str, object]:
    with server.client() as client:
        response = client.post("/api/v1/build", json=body)
        assert response.status_code in (200, 202), response.text
        done = poll_build(client, response.json()["request_hash"])
    assert done.status_code == 200, done.text
    result: dict[str, object] = done.json()
    return result


def test_a_libremesh_image_has_the_lime_packages_and_the_users(server: RunningServer) -> None:
    result = _build(server, {**DEVICE, "distro": "libremesh", "packages": ["lime-docs", "htop"]})
    manifest = result["manifest"]
    assert isinstance(manifest, dict)
    for package in ("lime-system", "lime-app", "lime-proto-anygw", "lime-proto-babeld",
                    "shared-state", "lime-docs", "htop", "babeld", "dnsmasq-full"):
        assert package in manifest, package
    assert manifest["lime-system"] == "2024.1-r4"
    assert "dnsmasq" not in manifest and "odhcpd-ipv6only" not in manifest
    build_cmd = " ".join(str(part) for part in result["build_cmd"])  # type: ignore[attr-defined]
    assert "lime-system" in build_cmd and "-dnsmasq" in build_cmd
    images = result["images"]
    assert isinstance(images, list) and images
    with server.client() as client:
        image = client.get(f"/store/{result['bin_dir']}/{images[0]['name']}")
        assert image.status_code == 200
        assert hashlib.sha256(image.content).hexdigest() == images[0]["sha256"]
        info = client.get(f"/api/v1/build/{result['request_hash']}/info").json()
    assert info["request"]["distro"] == "libremesh"


def test_the_user_can_opt_out_of_a_default_and_openwrt_stays_plain(
    server: RunningServer,
) -> None:
    without_app = _build(server, {**DEVICE, "distro": "libremesh",
                                  "packages": ["-lime-app", "-first-boot-wizard"]})
    manifest = without_app["manifest"]
    assert isinstance(manifest, dict)
    assert "lime-system" in manifest and "lime-app" not in manifest
    openwrt = _build(server, {**DEVICE, "packages": ["htop"]})
    plain = openwrt["manifest"]
    assert isinstance(plain, dict)
    assert "dnsmasq" in plain and not any(name.startswith("lime-") for name in plain)
