"""End to end: ``firmforge serve`` (real HTTP, real worker process, real Redis) builds an image
from the synthetic mirror, and a client downloads and verifies it."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import os
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from redis import Redis
from sqlalchemy.engine import make_url

from tests.conftest import MirrorFixture
from tests.server_fixtures import (
    RunningServer,
    firmforge_server,
    mirror_over_http,
    poll_build,
)

pytestmark = pytest.mark.slow

REQUEST = {
    "version": "24.10.5",
    "target": "ath79/generic",
    "profile": "tplink,archer-c7-v5",
    "packages": ["luci", "-ppp", "-ppp-mod-pppoe"],
}


@pytest.fixture(scope="module")
def mirror_url(mirror: MirrorFixture) -> Iterator[str]:
    with mirror_over_http(mirror.root) as url:
        yield url


@pytest.fixture(scope="module")
def server(
    mirror: MirrorFixture, mirror_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """The embedded mode: nothing to start but ``firmforge serve``."""
    with firmforge_server(tmp_path_factory.mktemp("serve"), mirror_url, mirror.public_key,
                          workers=2, extra_env={"FIRMFORGE_ALLOW_DEFAULTS": "true"}) as running:
        yield running


def _build_and_download(server: RunningServer, request: dict[str, object]) -> dict[str, object]:
    with server.client() as client:
        posted = client.post("/api/v1/build", json=request)
        assert posted.status_code in (200, 202), posted.text
        body = posted.json()
        request_hash = body["request_hash"]
        assert len(request_hash) == 64
        if posted.status_code == 202:
            assert posted.headers["X-Imagebuilder-Status"] in (
                "queued", "init", "download_imagebuilder", "calculate_packages_hash",
                "building_image")
            body = poll_build(client, request_hash).json()
        assert body["status"] == 200, body
        assert body["detail"] == "done" and body["imagebuilder_status"] == "done"
        assert body["bin_dir"] == request_hash
        for image in body["images"]:
            download = client.get(f"/store/{body['bin_dir']}/{image['name']}")
            assert download.status_code == 200
            assert int(download.headers["content-length"]) == len(download.content)
            assert hashlib.sha256(download.content).hexdigest() == image["sha256"]
        return body


def test_build_through_http_and_download(server: RunningServer) -> None:
    body = _build_and_download(server, REQUEST)
    assert body["id"] == "tplink_archer-c7-v5"
    assert body["request"]["profile"] == "tplink_archer-c7-v5"
    assert body["version_number"] == "24.10.5"
    assert "luci" in body["manifest"] and "ppp" not in body["manifest"]
    assert {i["type"] for i in body["images"]} == {"sysupgrade", "factory"}
    assert body["build_cmd"][:2] == ["make", "image"]
    assert "PACKAGES=luci -ppp -ppp-mod-pppoe" in body["build_cmd"]
    # a second identical request is a cache hit: 200 at once, same images
    with server.client() as client:
        reordered = ["-ppp-mod-pppoe", "-ppp", "luci"]
        again = client.post("/api/v1/build", json={**REQUEST, "packages": reordered})
        assert again.status_code == 200
        assert again.json()["images"] == body["images"]
        head = client.head(f"/api/v1/build/{body['request_hash']}")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["X-Imagebuilder-Status"] == "done"


def test_concurrent_identical_requests_make_one_build(server: RunningServer) -> None:
    request = {**REQUEST, "profile": "glinet_gl-ar150", "packages": ["tcpdump"]}

    def post() -> str:
        with server.client() as client:
            response = client.post("/api/v1/build", json=request)
            assert response.status_code in (200, 202), response.text
            return str(response.json()["request_hash"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        hashes = set(pool.map(lambda _: post(), range(20)))
    assert len(hashes) == 1
    request_hash = hashes.pop()
    with server.client() as client:
        assert poll_build(client, request_hash).status_code == 200
    database = server.data_dir / "firmforge.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        builds = connection.execute(
            sqlalchemy.text("SELECT count(*) FROM builds WHERE request_hash = :h"),
            {"h": request_hash},
        ).scalar_one()
    engine.dispose()
    assert builds == 1


def test_failed_build_says_which_stage_and_why(server: RunningServer) -> None:
    request = {**REQUEST, "profile": "tplink_tl-wr842n-v3",
               "packages": ["python3-light", "luci", "luci-app-statistics", "tcpdump"]}
    with server.client() as client:
        posted = client.post("/api/v1/build", json=request)
        body = poll_build(client, posted.json()["request_hash"]).json()
    assert body["status"] == 500
    assert body["detail"] == "Error: Selected packages exceed device storage"
    assert body["failed_stage"] == "building_image"
    assert "is too big" in body["stderr"]


def test_unknown_packages_are_refused_before_building(server: RunningServer) -> None:
    with server.client() as client:
        response = client.post(
            "/api/v1/build", json={**REQUEST, "packages": ["luci", "nosuch-a", "auc", "nosuch-b"]}
        )
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert "nosuch-a" in detail and "nosuch-b" in detail


def test_store_refuses_path_traversal(server: RunningServer) -> None:
    with server.client() as client:
        for path in ("/store/../../etc/passwd", f"/store/{'a' * 64}/..%2F..%2Fetc%2Fpasswd",
                     "/store/%2e%2e/%2e%2e/etc/passwd", f"/store/{'a' * 64}/nothing.bin"):
            assert client.get(path).status_code == 404, path


def make_url_redis(url: str, database: int) -> str:
    """The same Redis server, another logical database."""
    base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
    return f"{base}/{database}"


@pytest.mark.skipif(
    not (os.environ.get("FIRMFORGE_TEST_REDIS_URL")
         and os.environ.get("FIRMFORGE_TEST_DATABASE_URL")),
    reason="set FIRMFORGE_TEST_REDIS_URL and FIRMFORGE_TEST_DATABASE_URL (CI does)",
)
def test_build_with_external_redis_and_postgresql(
    mirror: MirrorFixture, mirror_url: str, tmp_path: Path
) -> None:
    # a Redis database of its own, emptied, so no earlier run's job answers for this one
    redis_url = str(make_url_redis(os.environ["FIRMFORGE_TEST_REDIS_URL"], 14))
    Redis.from_url(redis_url).flushdb()
    database_url = os.environ["FIRMFORGE_TEST_DATABASE_URL"]
    schema = f"ff_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    scoped = make_url(database_url).update_query_dict(
        {"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    try:
        with firmforge_server(tmp_path / "serve", mirror_url, mirror.public_key, workers=1,
                              redis_url=redis_url, database_url=str(scoped)) as running:
            # a unique request so another run's finished job in the shared Redis is no hit
            body = _build_and_download(
                running, {**REQUEST, "profile": "ubnt_unifiac-lite", "packages": ["iperf3"]})
        with engine.connect() as connection:
            done = connection.execute(sqlalchemy.text(
                f'SELECT count(*) FROM "{schema}".builds WHERE status = \'done\''  # noqa: S608
            )).scalar_one()
        assert done >= 1
        assert body["id"] == "ubnt_unifiac-lite"
    finally:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def test_packages_versions_are_checked_before_building(server: RunningServer) -> None:
    base = {**REQUEST, "profile": "glinet_gl-ar150", "packages": []}
    with server.client() as client:
        good = client.post("/api/v1/build", json={**base, "packages_versions": {
            "tcpdump": "4.99.5-r1", "luci": "25.051.13443~aa0c1ec-r1"}})
        body = poll_build(client, good.json()["request_hash"]).json()
        assert body["status"] == 200, body
        assert body["manifest"]["tcpdump"] == "4.99.5-r1"
        assert "libpcap1" in body["manifest"]  # dependencies, by the names clients use
        wrong = client.post("/api/v1/build",
                            json={**base, "packages_versions": {"tcpdump": "4.99.4-r1"}})
        failed = poll_build(client, wrong.json()["request_hash"]).json()
    assert failed["status"] == 500
    assert failed["failed_stage"] == "validate_manifest"
    assert failed["detail"] == (
        "Error: Impossible package selection: tcpdump version not as requested: "
        "4.99.4-r1 vs. 4.99.5-r1")


def test_defaults_script_and_rootfs_size_reach_the_image(server: RunningServer) -> None:
    script = "#!/bin/sh\nuci set system.@system[0].hostname='forged'\nuci commit\n"
    request = {"version": "24.10.5", "target": "x86/64", "profile": "generic",
               "packages": ["htop"], "defaults": script, "rootfs_size_mb": 256,
               "filesystem": "ext4"}
    with server.client() as client:
        posted = client.post("/api/v1/build", json=request)
        body = poll_build(client, posted.json()["request_hash"]).json()
        assert body["status"] == 200, body
        assert "ROOTFS_PARTSIZE=256" in body["build_cmd"]
        assert "ROOTFS_FILESYSTEM=ext4" in body["build_cmd"]
        assert any(part.startswith("FILES=") for part in body["build_cmd"])
        # the x86 rootfs tarball shows what went into the image
        sums = client.get(f"/store/{body['bin_dir']}/sha256sums").text
        rootfs = next(line.split("*", 1)[1] for line in sums.splitlines()
                      if line.endswith("-rootfs.tar.gz"))
        archive = client.get(f"/store/{body['bin_dir']}/{rootfs}").content
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.extractfile("./etc/uci-defaults/99-asu-defaults")
        assert member is not None and member.read().decode() == script
        assert "./usr/bin/htop" in tar.getnames()
