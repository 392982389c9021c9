"""The build API's answers without a worker: validation (400/422), queueing, 404/405/529.

The app runs in process against a real embedded Redis and the synthetic mirror over HTTP.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from firmforge.api import create_app
from firmforge.config import Settings
from firmforge.server import make_services

VALID = {"version": "24.10.5", "target": "ath79/generic", "profile": "tplink_archer-c7-v5"}


def test_new_request_is_queued_with_position_headers(client: TestClient) -> None:
    first = client.post("/api/v1/build", json={**VALID, "packages": ["tcpdump"]})
    second = client.post("/api/v1/build", json={**VALID, "packages": ["htop"]})
    assert first.status_code == second.status_code == 202
    body = second.json()
    assert body["status"] == 202 and body["detail"] == "queued"
    assert body["queue_position"] == 1  # 0-based, as upstream
    assert len(body["request_hash"]) == 64 and body["enqueued_at"]
    assert second.headers["X-Imagebuilder-Status"] == "queued"
    assert second.headers["X-Queue-Position"] == "1"
    polled = client.get(f"/api/v1/build/{body['request_hash']}")
    assert polled.status_code == 202 and polled.json()["queue_position"] == 1
    head = client.head(f"/api/v1/build/{body['request_hash']}")
    assert head.status_code == 202 and head.content == b""
    assert head.headers["X-Queue-Position"] == "1"


def test_identical_requests_share_one_job(client: TestClient, settings: Settings) -> None:
    hashes = {client.post("/api/v1/build", json={**VALID, "packages": ["nano", "htop"]})
              .json()["request_hash"] for _ in range(5)}
    reordered = client.post("/api/v1/build", json={**VALID, "packages": ["htop", "nano"]})
    hashes.add(reordered.json()["request_hash"])
    assert len(hashes) == 1
    assert client.get("/api/v1/stats").status_code in (200, 404)  # route arrives with issue 4
    services = client.app.state.services  # type: ignore[attr-defined]
    assert len(services.queue) == 1


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({**VALID, "defaults": "echo hi"}, "Handling `defaults` not enabled on server"),
        ({**VALID, "distro": "lede"}, "Unsupported distro: lede"),
        ({**VALID, "version": "99.99.99"}, "Unsupported branch: 99.99.99"),
        ({**VALID, "version": "24.10.99"}, "Unsupported version: 24.10.99"),
        ({**VALID, "target": "x86/32"},
         "Unsupported target: x86/32. The requested target was either dropped, is still being "
         "built or is not supported by the selected version. Please check the forums or try "
         "again later."),
        ({**VALID, "profile": "vendor,nosuch"},
         "Unsupported profile: vendor_nosuch. The requested profile was either dropped or never "
         "existed. Please check the forums for more information."),
    ],
)
def test_upstream_400_texts(client: TestClient, fields: dict[str, object], detail: str) -> None:
    response = client.post("/api/v1/build", json=fields)
    assert response.status_code == 400
    assert response.json() == {"detail": detail, "status": 400}


def test_unknown_packages_named_all_at_once_with_renames(client: TestClient) -> None:
    response = client.post(
        "/api/v1/build", json={**VALID, "packages": ["luci", "nosuch-a", "-whatever", "nosuch-b"]})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "nosuch-a" in detail and "nosuch-b" in detail
    assert "luci" not in detail and "whatever" not in detail
    services = client.app.state.services  # type: ignore[attr-defined]
    assert len(services.queue) == 0  # no build slot spent


def test_old_package_names_are_renamed_for_the_new_release(client: TestClient) -> None:
    response = client.post("/api/v1/build", json={**VALID, "packages": ["auc"]})
    assert response.status_code == 202, response.text


def test_profile_by_board_name_and_x86_generic(client: TestClient) -> None:
    by_board = client.post("/api/v1/build", json={**VALID, "profile": "tplink,archer-c7-v5"})
    assert by_board.status_code == 202
    services = client.app.state.services  # type: ignore[attr-defined]
    view = services.queue.fetch(by_board.json()["request_hash"])
    assert view.request["profile"] == "tplink_archer-c7-v5"
    x86 = client.post("/api/v1/build", json={"version": "24.10.5", "target": "x86/64",
                                             "profile": "some-pc-board"})
    assert x86.status_code == 202
    assert services.queue.fetch(x86.json()["request_hash"]).request["profile"] == "generic"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "version: Field required"),
        ({**VALID, "version": "1.2.3;rm"}, "version: String should match pattern"),
        ({**VALID, "packages": "x"}, "packages: Input should be a valid list"),
        ({**VALID, "rootfs_size_mb": 0}, "rootfs_size_mb: Input should be greater than or equal"),
        ({**VALID, "rootfs_size_mb": 5000}, "rootfs_size_mb: Input should be less than or equal"),
        ({**VALID, "filesystem": "bogusfs"}, "filesystem: Input should be"),
        ({**VALID, "diff_packages": "maybe"}, "diff_packages: Input should be a valid boolean"),
        ({**VALID, "defaults": "x" * 20481}, "defaults: String should have at most 20480"),
    ],
)
def test_schema_errors_are_422_with_a_string_detail(
    client: TestClient, body: dict[str, object], fragment: str
) -> None:
    response = client.post("/api/v1/build", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str) and fragment in detail, detail


def test_malformed_bodies(client: TestClient) -> None:
    assert client.post("/api/v1/build", content=b"not json",
                       headers={"content-type": "application/json"}).status_code == 422
    assert client.post("/api/v1/build").status_code == 422
    assert client.post("/api/v1/build", json=["a"]).status_code == 422


def test_unknown_hash_is_404_and_post_to_hash_is_405(client: TestClient) -> None:
    response = client.get(f"/api/v1/build/{'0' * 64}")
    assert response.status_code == 404
    assert response.json()["detail"] == "could not find provided request hash"
    assert client.head(f"/api/v1/build/{'0' * 64}").status_code == 404
    assert client.get("/api/v1/build/" + "x" * 500).status_code == 404
    assert client.post(f"/api/v1/build/{'0' * 64}", json=VALID).status_code == 405


def test_overload_is_529_with_upstreams_body(settings: Settings, tmp_path: Path) -> None:
    limited = settings.model_copy(update={"max_pending_jobs": 1})
    services = make_services(limited, str(settings.redis_url))
    services.queue.redis.flushdb()
    with TestClient(create_app(services)) as client:
        for package in ("htop", "nano"):
            assert client.post("/api/v1/build",
                               json={**VALID, "packages": [package]}).status_code == 202
        response = client.post("/api/v1/build", json={**VALID, "packages": ["iperf3"]})
    assert response.status_code == 529
    assert response.json() == {
        "status": 529, "title": "Server overloaded",
        "detail": "server overload, queue contains too many build requests: 2"}


def test_openapi_document_is_served(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert "/api/v1/build" in document["paths"]
    assert {"get", "head"} <= set(document["paths"]["/api/v1/build/{request_hash}"])
    assert client.get("/docs").status_code == 200
