"""What users see when things go wrong: an untrusted mirror, a corrupted ImageBuilder
download, and a failed build that is not served forever."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from firmforge.usign import SecretKey
from tests.conftest import MirrorFixture
from tests.server_fixtures import firmforge_server, mirror_over_http, poll_build

pytestmark = pytest.mark.slow

X86 = {"version": "24.10.5", "target": "x86/64", "profile": "generic"}


def test_a_mirror_signed_by_another_key_is_refused(mirror: MirrorFixture, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger.pub"
    stranger.write_text(SecretKey.from_seed(bytes(32), bytes(8)).public_key.to_text())
    with mirror_over_http(mirror.root) as url, firmforge_server(
        tmp_path / "serve", url, stranger, workers=0
    ) as server, server.client() as client:
        response = client.post("/api/v1/build", json=X86)
    assert response.status_code == 502
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert "No trusted key" in detail and "sha256sums.sig" in detail


def test_a_corrupted_imagebuilder_download_fails_the_build_clearly(
    mirror: MirrorFixture, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    subprocess.run(["cp", "-al", str(mirror.root), str(tree)], check=True)
    tarball = tree / mirror.imagebuilder_tarball("24.10.5", "x86/64").relative_to(mirror.root)
    corrupted = bytearray(tarball.read_bytes())
    corrupted[1000] ^= 0xFF
    tarball.unlink()  # a new file, so the shared fixture tree stays intact
    tarball.write_bytes(bytes(corrupted))
    with mirror_over_http(tree) as url, firmforge_server(
        tmp_path / "serve", url, mirror.public_key, workers=1
    ) as server, server.client() as client:
        posted = client.post("/api/v1/build", json=X86)
        assert posted.status_code == 202, posted.text
        body = poll_build(client, posted.json()["request_hash"]).json()
        cache = server.data_dir / "imagebuilders"
        leftovers = [p.name for p in cache.iterdir()] if cache.exists() else []
    assert body["status"] == 500
    assert body["failed_stage"] == "container_setup"
    assert "Corrupted ImageBuilder download" in body["detail"]
    assert not any(name.startswith("openwrt-imagebuilder") and not name.endswith(
        (".lock", ".dl")) for name in leftovers), leftovers
    shutil.rmtree(tree)


def test_a_failure_is_answered_from_cache_only_for_the_failure_ttl(
    mirror: MirrorFixture, tmp_path: Path
) -> None:
    too_big = {"version": "24.10.5", "target": "ath79/generic", "profile": "tplink_tl-wr842n-v3",
               "packages": ["python3-light", "luci", "luci-app-statistics", "tcpdump"]}
    with mirror_over_http(mirror.root) as url, firmforge_server(
        tmp_path / "serve", url, mirror.public_key, workers=1,
        extra_env={"FIRMFORGE_BUILD_FAILURE_TTL": "3"},
    ) as server, server.client() as client:
        first = client.post("/api/v1/build", json=too_big)
        request_hash = first.json()["request_hash"]
        failed = poll_build(client, request_hash).json()
        assert failed["status"] == 500
        cached = client.post("/api/v1/build", json=too_big)
        assert cached.status_code == 500  # the same failure, at once, within the TTL
        time.sleep(4)
        retried = client.post("/api/v1/build", json=too_big)
        assert retried.status_code == 202  # after the TTL a repeat builds again
        assert retried.json()["request_hash"] == request_hash
        assert poll_build(client, request_hash).json()["status"] == 500
