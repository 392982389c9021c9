"""Storage that never fills up: the store's retention and budget, and a full disk said plainly."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmforge.storage_gc import collect
from firmforge.store import LocalStore
from tests.conftest import MirrorFixture
from tests.farm._fixtures import wait_for
from tests.server_fixtures import firmforge_server, mirror_over_http, poll_build

X86 = {"version": "24.10.5", "target": "x86/64", "profile": "generic"}
DAY = 86400.0


def publish(store: LocalStore, tmp_path: Path, name: str, size: int, age: float) -> str:
    bin_dir = name * 64
    source = tmp_path / f"src-{name}"
    source.mkdir()
    (source / "image.bin").write_bytes(b"x" * size)
    store.publish(bin_dir, source)
    published = time.time() - age
    os.utime(store.root / bin_dir, (published, published))
    return bin_dir


def test_expired_then_least_downloaded_and_oldest_go_first(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    expired = publish(store, tmp_path, "a", 100, age=40 * DAY)
    popular_old = publish(store, tmp_path, "b", 100, age=5 * DAY)
    unloved_old = publish(store, tmp_path, "c", 100, age=4 * DAY)
    unloved_new = publish(store, tmp_path, "d", 100, age=3 * DAY)
    fresh = publish(store, tmp_path, "e", 100, age=10)  # just published: kept
    served = publish(store, tmp_path, "f", 100, age=6 * DAY)
    assert store.file(served, "image.bin") is not None  # being downloaded: kept
    (store.root / ".staging-in-progress").mkdir()  # being written: never a candidate
    removed: list[str] = []
    report = collect(store, max_bytes=300, max_age=30 * DAY, grace=60,
                     downloads=lambda: {popular_old: 7, unloved_new: 0},
                     on_removed=removed.append)
    assert report.removed == [expired, unloved_old, unloved_new] == removed
    assert {b for b, _, _ in store.builds()} == {popular_old, fresh, served}
    assert report.kept_bytes == 300
    assert (store.root / ".staging-in-progress").is_dir()


def test_a_store_over_a_tiny_budget_is_collected_and_rebuilt_on_request(
    mirror: MirrorFixture, tmp_path: Path
) -> None:
    with mirror_over_http(mirror.root) as url, firmforge_server(
        tmp_path / "serve", url, mirror.public_key, workers=1,
        extra_env={"FIRMFORGE_STORE_MAX_GB": "0.0000001", "FIRMFORGE_STORE_GC_INTERVAL": "1"},
    ) as server, server.client() as client:
        posted = client.post("/api/v1/build", json={**X86, "packages": ["htop"]})
        digest = posted.json()["request_hash"]
        assert poll_build(client, digest).status_code == 200
        # watched on disk: each download would keep it for another GC interval
        wait_for(lambda: not (server.data_dir / "store" / digest).exists(), 30,
                 "build not collected")
        assert client.get(f"/store/{digest}/sha256sums").status_code == 404
        assert client.get(f"/api/v1/build/{digest}").status_code == 404
        again = client.post("/api/v1/build", json={**X86, "packages": ["htop"]})
        assert again.status_code == 202  # built again, not answered with files that are gone
        assert poll_build(client, digest).status_code == 200


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2.5 MiB file system: room for one ImageBuilder, not for a build's copy of it."""
    mount = tmp_path / "serve" / "imagebuilders"
    mount.mkdir(parents=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2560k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_a_full_disk_fails_the_build_saying_so_and_the_service_answers(
    mirror: MirrorFixture, tmp_path: Path, tiny_disk: Path
) -> None:
    with mirror_over_http(mirror.root) as url, firmforge_server(
        tmp_path / "serve", url, mirror.public_key, workers=1
    ) as server, server.client() as client:
        posted = client.post("/api/v1/build", json={**X86, "packages": ["htop"]})
        failed = poll_build(client, posted.json()["request_hash"])
        assert failed.status_code == 500
        body = failed.json()
        assert "disk is full" in body["detail"], body["detail"]
        assert body["failed_stage"] == "container_setup"
        assert client.get("/api/v1/workers").status_code == 200
        assert client.get("/json/v1/overview.json").status_code == 200
