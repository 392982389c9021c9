"""The seed-era endpoints ``/update-request`` and ``/image-request`` in process (no workers, so
jobs stay queued): the era's status codes and 400 texts, and one job shared with the v1 API."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from fastapi.testclient import TestClient

from firmforge.queue import JobView

SEED = {"distro": "openwrt", "version": "24.10.5", "target": "ath79", "subtarget": "generic",
        "board": "tplink,archer-c7-v5"}
MISSING = "missing parameters - need distro version target subtarget board"
V1 = {"version": "24.10.5", "target": "ath79/generic", "profile": "tplink,archer-c7-v5"}


def _queue_length(client: TestClient) -> int:
    return len(client.app.state.services.queue)  # type: ignore[attr-defined]


def test_image_request_is_queued_with_201_and_polled_again(client: TestClient) -> None:
    first = client.post("/image-request", json={**SEED, "packages": ["tcpdump"]})
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["detail"] == "setting up imagebuilder - please wait"
    assert body["status"] == 201 and body["queue"] == 0 and len(body["request_hash"]) == 64
    again = client.post("/image-request", json={**SEED, "packages": ["tcpdump"]})
    assert again.status_code == 201 and again.json()["request_hash"] == body["request_hash"]
    assert _queue_length(client) == 1


def test_same_job_as_the_v1_api_either_way_round(client: TestClient) -> None:
    seed = client.post("/image-request", json={**SEED, "packages": ["htop", "nano"]})
    v1 = client.post("/api/v1/build", json={**V1, "packages": ["nano", "htop"]})
    assert seed.status_code == 201 and v1.status_code == 202
    assert seed.json()["request_hash"] == v1.json()["request_hash"]
    v1_first = client.post("/api/v1/build", json={**V1, "profile": "tplink_archer-c7-v5"})
    seed_later = client.post("/image-request", json={**SEED, "board": "tplink_archer-c7-v5"})
    assert seed_later.json()["request_hash"] == v1_first.json()["request_hash"]
    assert _queue_length(client) == 2
    job = client.app.state.services.queue.fetch(seed.json()["request_hash"])  # type: ignore[attr-defined]
    assert job.request["profile"] == "tplink_archer-c7-v5"  # canonical, as v1 stores it
    assert job.request["target"] == "ath79/generic"


def test_lede_is_the_old_name_and_packages_may_be_an_object(client: TestClient) -> None:
    response = client.post("/image-request", json={**SEED, "distro": "LEDE",
                                                   "packages": {"htop": "3.3.0-r1"}})
    assert response.status_code == 201, response.text


def test_unknown_board_falls_back_to_the_model(client: TestClient) -> None:
    response = client.post("/image-request",
                           json={**SEED, "board": "nosuch,board", "model": "tplink,archer-c7-v5"})
    assert response.status_code == 201, response.text
    v1 = client.post("/api/v1/build", json={**V1, "profile": "tplink_archer-c7-v5"})
    assert v1.json()["request_hash"] == response.json()["request_hash"]


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({k: v for k, v in SEED.items() if k != "board"}, MISSING),
        ({**SEED, "subtarget": ""}, MISSING),
        ({**SEED, "distro": "gentoo"}, "unknown distribution gentoo"),
        ({**SEED, "version": "99.99.99"}, "unknown release 99.99.99"),
        ({**SEED, "version": "24.10.99"}, "unknown release 24.10.99"),
        ({**SEED, "target": "x86", "subtarget": "32"}, "unknown target x86/32"),
        ({**SEED, "board": "vendor,nosuch"}, "unknown board: vendor,nosuch/"),
        ({**SEED, "board": "vendor,nosuch", "model": "Nosuch Router"},
         "unknown board: vendor,nosuch/Nosuch Router"),
        ({**SEED, "packages": ["luci", "nosuch-a", "-ppp"]},
         "could not find package nosuch-a for requested target"),
        ({**SEED, "network_profile": "berlin"}, 'network profile "berlin" not found'),
    ],
)
def test_image_request_400_texts(client: TestClient, fields: dict[str, Any], text: str) -> None:
    response = client.post("/image-request", json=fields)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == body["detail"] == text
    assert body["status"] == 400
    assert _queue_length(client) == 0  # no build slot spent


def test_image_request_not_json(client: TestClient) -> None:
    response = client.post("/image-request", content=b"nope",
                           headers={"content-type": "application/json"})
    assert response.status_code == 400 and "error" in response.json()


def test_image_request_states_mapped(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """206 while building, 500 with the error when failed (no worker here, so faked views)."""
    queue = client.app.state.services.queue  # type: ignore[attr-defined]
    view = JobView(request_hash="ab" * 32, status="started", stage="building_image",
                   queue_position=0, enqueued_at=None, result=None, failure=None, request={})
    monkeypatch.setattr(queue, "fetch", lambda _digest: view)
    building = client.post("/image-request", json=SEED)
    assert building.status_code == 206
    assert building.json()["detail"] == "currently building - please wait"
    failure = {"detail": "Selected packages exceed device storage", "failed_stage": "image"}
    view = dataclasses.replace(view, status="failed", stage="failed", failure=failure)
    failed = client.post("/image-request", json=SEED)
    assert failed.status_code == 500
    body = failed.json()
    assert body["error"] == body["detail"] == "Selected packages exceed device storage"
    assert body["failed_stage"] == "image"


def _installed(client: TestClient, version: str) -> dict[str, str]:
    catalog = client.app.state.services.catalog  # type: ignore[attr-defined]
    return dict(catalog.package_index(version, "ath79/generic").versions)


def test_update_request_newer_release_with_renames(client: TestClient) -> None:
    installed = {**_installed(client, "23.05.5"), "auc": "0.3.2-r1"}
    response = client.post("/update-request", json={**SEED, "version": "23.05.5",
                                                    "packages": installed})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == "24.10.5"
    assert "owut" in body["packages"] and "auc" not in body["packages"]
    assert body["updates"] == {}


def test_update_request_package_updates_only_with_the_flag(client: TestClient) -> None:
    old = _installed(client, "24.10.4")
    newest = {**_installed(client, "24.10.5"), "dnsmasq": old["dnsmasq"]}
    body = {**SEED, "packages": newest}
    assert client.post("/update-request", json=body).status_code == 204
    flagged = client.post("/update-request", json={**body, "update_packages": True})
    assert flagged.status_code == 200, flagged.text
    current = _installed(client, "24.10.5")["dnsmasq"]
    assert flagged.json()["updates"] == {"dnsmasq": [current, old["dnsmasq"]]}
    assert "version" not in flagged.json()


def test_update_request_nothing_to_update_is_204(client: TestClient) -> None:
    installed = _installed(client, "24.10.5")
    response = client.post("/update-request",
                           json={**SEED, "packages": installed, "update_packages": True})
    assert response.status_code == 204 and response.content == b""


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({**SEED, "version": ""}, "missing parameters - need distro version target subtarget"),
        ({**SEED, "distro": "gentoo"}, "unknown distribution gentoo"),
        ({**SEED, "version": "99.99.99"}, "unknown release 99.99.99"),
        ({**SEED, "target": "x86", "subtarget": "32"}, "unknown target x86/32"),
    ],
)
def test_update_request_400_texts(client: TestClient, fields: dict[str, Any], text: str) -> None:
    response = client.post("/update-request", json=fields)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == response.json()["detail"] == text
