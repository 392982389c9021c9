"""Downloads through ``/store``: served with Range support or redirected, counted per file,
release and day, reported by ``/api/v1/stats/downloads``, and kept across a restart.

The app runs in process (real embedded Redis, real database file); the restart test runs
``firmforge serve`` as a process and stops it with SIGTERM.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from firmforge.api import Services, create_app
from firmforge.config import Settings
from firmforge.db import Database
from firmforge.server import make_services
from firmforge.store import LocalStore
from tests.conftest import MirrorFixture
from tests.server_fixtures import firmforge_server, mirror_over_http

BIN_DIR = "d0" * 32
OTHER = "e1" * 32
PAYLOAD = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable
IMAGE = "openwrt-24.10.2-x86-64-generic-squashfs-combined.img.gz"
URL = f"/store/{BIN_DIR}/{IMAGE}"


def publish(data_dir: Path, tmp_path: Path, bin_dir: str = BIN_DIR) -> None:
    source = tmp_path / f"build-{bin_dir[:4]}"
    source.mkdir()
    (source / IMAGE).write_bytes(PAYLOAD)
    (source / "sha256sums").write_text(f"0000  *{IMAGE}\n")
    LocalStore(data_dir / "store").publish(bin_dir, source)


def record_build(database_url: str, bin_dir: str = BIN_DIR, profile: str = "generic") -> None:
    database = Database(database_url)
    database.migrate()
    build_id = database.record_queued(bin_dir, {}, "openwrt", "24.10.2", "x86/64", profile, [])
    database.record_started(build_id, worker="test")
    database.record_done(build_id, manifest={}, images=[{"name": IMAGE}], bin_dir=bin_dir,
                         imagebuilder={}, build_cmd=[])
    database.dispose()


def make_client(settings: Settings, tmp_path: Path, **update: Any) -> Iterator[TestClient]:
    own = settings.model_copy(update={"data_dir": tmp_path / "data", **update})
    publish(own.data_dir, tmp_path)
    record_build(own.effective_database_url)
    services = make_services(own, str(own.redis_url))
    services.queue.redis.flushdb()
    with TestClient(create_app(services)) as client:
        yield client
    services.database.dispose()


@pytest.fixture
def client(settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    yield from make_client(settings, tmp_path)


@pytest.fixture
def redirecting(settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    yield from make_client(settings, tmp_path, store_url="https://cdn.example.org/firmware/")


def svc(client: TestClient) -> Services:
    return client.app.state.services  # type: ignore[attr-defined,no-any-return]


def stats(client: TestClient, query: str = "") -> dict[str, Any]:
    response = client.get(f"/api/v1/stats/downloads{query}")
    assert response.status_code == 200, response.text
    assert response.headers.get_list("access-control-allow-origin") == ["*"]
    return response.json()  # type: ignore[no-any-return]


def file_counts(body: dict[str, Any]) -> dict[str, int]:
    return {row["file"]: row["downloads"] for row in body["top_files"]}


# -- serving ----------------------------------------------------------------------------------


def test_a_whole_file_is_served_and_counted(client: TestClient):
    response = client.get(URL)
    assert response.status_code == 200
    assert response.content == PAYLOAD
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers.get_list("access-control-allow-origin") == ["*"]
    assert svc(client).downloads.pending == 1


def test_head_is_not_counted(client: TestClient):
    response = client.head(URL)
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(PAYLOAD))
    assert svc(client).downloads.pending == 0


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-99", 0, 99), ("bytes=1000-2047", 1000, 2047), ("bytes=10000-", 10000, 10239),
     ("bytes=-40", 10200, 10239), ("bytes=10200-99999", 10200, 10239)],
)
def test_a_single_range_answers_206_with_the_right_bytes(
    client: TestClient, header: str, start: int, end: int
):
    response = client.get(URL, headers={"Range": header})
    assert response.status_code == 206
    assert response.content == PAYLOAD[start:end + 1]
    assert response.headers["content-range"] == f"bytes {start}-{end}/{len(PAYLOAD)}"
    assert response.headers["content-length"] == str(end - start + 1)
    assert svc(client).downloads.pending == (1 if start == 0 else 0)


def test_several_ranges_answer_multipart_and_are_not_counted(client: TestClient):
    response = client.get(URL, headers={"Range": "bytes=0-9,100-109"})
    assert response.status_code == 206
    assert response.headers["content-type"].startswith("multipart/byteranges")
    assert PAYLOAD[100:110] in response.content
    assert svc(client).downloads.pending == 0


def test_an_unsatisfiable_range_answers_416(client: TestClient):
    response = client.get(URL, headers={"Range": f"bytes={len(PAYLOAD)}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(PAYLOAD)}"
    assert svc(client).downloads.pending == 0


def test_if_range_with_a_stale_validator_sends_the_whole_file(client: TestClient):
    response = client.get(URL, headers={"Range": "bytes=5-9", "If-Range": '"stale-etag"'})
    assert response.status_code == 200
    assert response.content == PAYLOAD
    assert svc(client).downloads.pending == 1


@pytest.mark.parametrize(
    "path",
    [f"/store/{BIN_DIR}/..%2F..%2Ffirmforge.db", f"/store/{BIN_DIR}/%2E%2E", "/store/../etc/passwd",
     f"/store/{BIN_DIR}/.hidden", f"/store/{BIN_DIR[:-1]}/{IMAGE}", f"/store/{BIN_DIR}/missing"],
)
def test_nothing_outside_the_store_and_misses_are_not_counted(client: TestClient, path: str):
    assert client.get(path).status_code == 404
    assert svc(client).downloads.pending == 0


# -- redirect mode ----------------------------------------------------------------------------


def test_redirect_mode_answers_302_to_the_file_server(redirecting: TestClient):
    response = redirecting.get(URL, follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == f"https://cdn.example.org/firmware{URL}"
    assert response.headers.get_list("access-control-allow-origin") == ["*"]
    assert redirecting.head(URL, follow_redirects=False).status_code == 302
    resumed = redirecting.get(URL, headers={"Range": "bytes=100-"}, follow_redirects=False)
    assert resumed.status_code == 302
    assert svc(redirecting).downloads.pending == 1  # the GET; not the HEAD, not the resume
    missing = redirecting.get(f"/store/{BIN_DIR}/missing.bin", follow_redirects=False)
    assert missing.status_code == 404
    assert file_counts(stats(redirecting)) == {IMAGE: 1}


# -- statistics -------------------------------------------------------------------------------


def test_stats_report_per_day_file_and_release(
    client: TestClient, settings: Settings, tmp_path: Path
):
    data_dir = svc(client).settings.data_dir
    publish(data_dir, tmp_path, OTHER)
    record_build(svc(client).settings.effective_database_url, OTHER, profile="other")
    for _ in range(3):
        assert client.get(URL).status_code == 200
    assert client.get(f"/store/{BIN_DIR}/sha256sums").status_code == 200
    assert client.get(f"/store/{OTHER}/{IMAGE}").status_code == 200

    body = stats(client, "?days=7&top=2")
    today = svc(client).downloads.today()
    assert body["days"] == 7
    assert body["last"] == today.isoformat()
    assert body["first"] == (today - timedelta(days=6)).isoformat()
    assert body["total"] == 5
    assert [day["downloads"] for day in body["per_day"]] == [0, 0, 0, 0, 0, 0, 5]
    assert body["top_files"][0] == {
        "bin_dir": BIN_DIR, "file": IMAGE, "url": URL, "version": "24.10.2",
        "target": "x86/64", "profile": "generic", "downloads": 3,
    }
    assert len(body["top_files"]) == 2
    assert body["versions"] == [{"version": "24.10.2", "downloads": 5}]
    assert body["targets"] == [{"target": "x86/64", "downloads": 5}]
    assert body["profiles"] == [
        {"version": "24.10.2", "target": "x86/64", "profile": "generic", "downloads": 4},
        {"version": "24.10.2", "target": "x86/64", "profile": "other", "downloads": 1},
    ]
    # a cache-buster alone is ignored like everywhere on the ASU surface: default period
    assert stats(client, "?1712345678901")["days"] == 30


@pytest.mark.parametrize("query", ["?days=0", "?days=91", "?days=x", "?top=0", "?top=101"])
def test_stats_refuse_bad_parameters(client: TestClient, query: str):
    assert client.get(f"/api/v1/stats/downloads{query}").status_code == 422


# -- a real server, restarted -----------------------------------------------------------------


def test_counts_survive_a_restart_of_the_server(
    mirror: MirrorFixture, redis_url: str, tmp_path: Path
):
    data_dir = tmp_path / "served"
    publish(data_dir, tmp_path)
    record_build(f"sqlite:///{(data_dir / 'firmforge.db').resolve()}")
    # no periodic flush during the test: only the shutdown flush can save the counts
    env = {"FIRMFORGE_DOWNLOADS_FLUSH_INTERVAL": "3600"}
    with mirror_over_http(mirror.root) as upstream:
        with firmforge_server(data_dir, upstream, mirror.public_key, workers=0,
                             redis_url=redis_url, extra_env=env) as server, server.client() as http:
            for _ in range(4):
                response = http.get(URL)
                assert response.status_code == 200
                assert response.content == PAYLOAD
            partial = http.get(URL, headers={"Range": "bytes=0-1023"})
            assert partial.status_code == 206
            assert http.get(URL, headers={"Range": "bytes=1024-"}).status_code == 206
            assert http.head(URL).status_code == 200
        assert server.process.returncode == 0, server.log.read_text()[-2000:]
        with firmforge_server(data_dir, upstream, mirror.public_key, workers=0,
                             redis_url=redis_url, extra_env=env) as server, server.client() as http:
            body = http.get("/api/v1/stats/downloads", params={"days": 2}).json()
    assert body["total"] == 5, body
    assert file_counts(body) == {IMAGE: 5}
    assert body["profiles"] == [
        {"version": "24.10.2", "target": "x86/64", "profile": "generic", "downloads": 5}
    ]


def test_the_flusher_writes_while_the_server_runs(
    mirror: MirrorFixture, redis_url: str, tmp_path: Path
):
    """Read the database itself (the stats route would flush): the thread wrote the count."""
    data_dir = tmp_path / "served"
    publish(data_dir, tmp_path)
    env = {"FIRMFORGE_DOWNLOADS_FLUSH_INTERVAL": "0.2"}
    database = Database(f"sqlite:///{(data_dir / 'firmforge.db').resolve()}")
    with mirror_over_http(mirror.root) as upstream, firmforge_server(
        data_dir, upstream, mirror.public_key, workers=0, redis_url=redis_url, extra_env=env
    ) as server, server.client() as http:
        assert http.get(URL).status_code == 200
        today = datetime.now(UTC).date()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if database.download_stats(today - timedelta(days=1), today).total == 1:
                break
            time.sleep(0.1)
        assert database.download_stats(today - timedelta(days=1), today).total == 1
    database.dispose()
