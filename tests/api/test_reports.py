"""``POST /api/v1/report`` and ``GET /api/v1/stats/reports`` over HTTP, and the channels they
give upgrade-check answers (the synthetic mirror: 23.05.5, 24.10.4, 24.10.5)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from firmforge.api._services import Services
from firmforge.db._models import ReportRow

URL, STATS = "/api/v1/report", "/api/v1/stats/reports"
TARGET, PROFILE, BOARD = "ath79/generic", "tplink_archer-c7-v5", "tplink,archer-c7-v5"
C7 = {"version": "24.10.5", "target": TARGET, "profile": PROFILE}


def _services(client: TestClient) -> Services:
    return client.app.state.services  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(autouse=True)
def _no_reports(client: TestClient) -> None:
    """The database lives as long as the module: every test starts without reports."""
    with _services(client).database.engine.begin() as connection:
        connection.execute(delete(ReportRow))


def _report(client: TestClient, outcome: str = "success", **body: Any) -> Any:
    response = client.post(URL, json={**C7, "outcome": outcome, **body})
    assert response.status_code == 201, response.text
    return response.json()


def _thresholds(client: TestClient, **update: Any) -> None:
    svc = _services(client)
    svc.settings = svc.settings.model_copy(update=update)


def test_a_report_by_release_resolves_the_board_name(client: TestClient) -> None:
    answer = _report(client, "failure", profile=BOARD, message="<b>no wifi</b>\x00 after it\n")
    assert answer["id"] > 0
    assert {k: answer[k] for k in ("version", "target", "profile", "outcome")} == {
        **C7, "outcome": "failure"}
    assert (answer["successes"], answer["failures"], answer["reports"]) == (0, 1, 1)
    assert (answer["failure_rate"], answer["channel"]) == (1.0, "caution")
    with _services(client).database.engine.connect() as connection:
        message = connection.execute(select(ReportRow.message)).scalar_one()
    assert message == "<b>no wifi</b> after it"  # plain text as sent, controls dropped


def test_a_report_by_request_hash(client: TestClient) -> None:
    database = _services(client).database
    digest = "ab" * 32
    build_id = database.record_queued(digest, {}, "openwrt", "24.10.4", TARGET, PROFILE, [])
    database.record_started(build_id, worker="test")
    database.record_done(build_id, manifest={}, images=[], bin_dir=digest, imagebuilder={},
                         build_cmd=[])
    response = client.post(URL, json={"request_hash": digest, "outcome": "success"})
    assert response.status_code == 201, response.text
    answer = response.json()
    assert (answer["version"], answer["target"], answer["profile"]) == ("24.10.4", TARGET,
                                                                        PROFILE)
    assert answer["successes"] == 1


@pytest.mark.parametrize("digest", ["cd" * 32, "0" * 12])
def test_unknown_or_unfinished_request_hash_is_404(client: TestClient, digest: str) -> None:
    database = _services(client).database
    database.record_queued("cd" * 32, {}, "openwrt", "24.10.4", TARGET, PROFILE, [])
    response = client.post(URL, json={"request_hash": digest, "outcome": "success"})
    assert response.status_code == 404
    assert response.json()["detail"] == "could not find provided request hash"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**C7, "outcome": "maybe"}, "outcome"),
        ({**C7}, "outcome"),
        ({**C7, "outcome": "success", "message": "x" * 501}, "message"),
        ({**C7, "outcome": "success", "profile": "a b"}, "profile"),
        ({**C7, "outcome": "success", "target": "ath79"}, "target"),
        ({"version": "24.10.5", "target": TARGET, "outcome": "success"}, "request_hash"),
        ({**C7, "request_hash": "ab" * 32, "outcome": "success"}, "either"),
        ({"request_hash": "../etc", "outcome": "success"}, "request_hash"),
        ({**C7, "outcome": "success", "extra": 1}, "extra"),
        ([], "body"),
    ],
)
def test_bad_fields_are_422_with_a_string_detail(
    client: TestClient, body: Any, field: str
) -> None:
    response = client.post(URL, json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert field in detail


def test_a_message_of_500_characters_is_kept(client: TestClient) -> None:
    assert _report(client, message="é" * 500)["reports"] == 1


@pytest.mark.parametrize(
    ("change", "detail"),
    [({"version": "99.99.0"}, "Unsupported"), ({"target": "x86/32"}, "Unsupported"),
     ({"profile": "no-such-board"}, "Unsupported"), ({"distro": "other"}, "distro")],
)
def test_unknown_releases_are_refused_like_builds(
    client: TestClient, change: dict[str, str], detail: str
) -> None:
    response = client.post(URL, json={**C7, "outcome": "success", **change})
    assert response.status_code == 400, response.text
    assert detail in response.json()["detail"]
    assert client.get(STATS).json()["releases"] == []


def test_rate_limited_per_client(client: TestClient) -> None:
    _thresholds(client, report_rate_limit=3)
    for _ in range(3):
        _report(client)
    response = client.post(URL, json={**C7, "outcome": "success"})
    assert response.status_code == 429
    assert isinstance(response.json()["detail"], str)
    assert "3 per hour" in response.json()["detail"]
    assert 0 < int(response.headers["Retry-After"]) <= 3600
    assert client.get(STATS).json()["total"] == 3  # the refused one is not stored
    other = TestClient(client.app, client=("192.0.2.7", 50000))
    assert other.post(URL, json={**C7, "outcome": "success"}).status_code == 201


def test_the_default_limit_is_20_per_hour(client: TestClient) -> None:
    for _ in range(20):
        _report(client, profile=BOARD)
    assert client.post(URL, json={**C7, "outcome": "failure"}).status_code == 429


def test_aggregation_and_channel_thresholds(client: TestClient) -> None:
    for _ in range(4):
        answer = _report(client)
    assert (answer["successes"], answer["channel"]) == (4, "caution")  # too few yet
    assert _report(client)["channel"] == "recommended"  # 5 successes, no failure
    answer = _report(client, "failure")
    assert (answer["failures"], answer["failure_rate"]) == (1, round(1 / 6, 4))
    assert answer["channel"] == "caution"  # 1/6 is not under 0.1
    for _ in range(4):
        answer = _report(client)
    assert (answer["reports"], answer["failure_rate"]) == (10, 0.1)
    assert answer["channel"] == "caution"  # exactly 0.1 is not under it
    answer = _report(client)
    assert answer["failure_rate"] < 0.1
    assert answer["channel"] == "recommended"
    _report(client, version="24.10.4")
    _report(client, target="x86/64", profile="generic")

    stats = client.get(STATS).json()
    assert (stats["min_successes"], stats["max_failure_rate"], stats["total"]) == (5, 0.1, 13)
    assert stats["releases"] == [
        {"version": "24.10.4", "target": TARGET, "profile": PROFILE, "successes": 1,
         "failures": 0, "reports": 1, "failure_rate": 0.0, "channel": "caution"},
        {"version": "24.10.5", "target": TARGET, "profile": PROFILE, "successes": 10,
         "failures": 1, "reports": 11, "failure_rate": round(1 / 11, 4),
         "channel": "recommended"},
        {"version": "24.10.5", "target": "x86/64", "profile": "generic", "successes": 1,
         "failures": 0, "reports": 1, "failure_rate": 0.0, "channel": "caution"},
    ]


def test_thresholds_are_settings(client: TestClient) -> None:
    _thresholds(client, channel_min_successes=1, channel_max_failure_rate=0.5)
    assert _report(client)["channel"] == "recommended"
    assert _report(client, "failure")["channel"] == "caution"  # 0.5 is not under 0.5
    assert client.get(STATS).json()["max_failure_rate"] == 0.5


def _check(client: TestClient, version: str) -> Any:
    body = {"version": version, "target": TARGET, "profile": BOARD, "packages": {}}
    response = client.post("/api/v1/upgrade-check", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_upgrade_check_shows_the_channel(client: TestClient) -> None:
    _thresholds(client, channel_min_successes=2)
    assert _check(client, "24.10.4")["upgrade"]["channel"] == "unknown"
    assert _check(client, "23.05.5")["stable"]["channel"] == "unknown"
    _report(client, "failure")
    assert _check(client, "24.10.4")["upgrade"]["channel"] == "caution"  # seen at once
    _report(client)
    _report(client)
    _report(client, target="x86/64", profile="generic", outcome="failure")  # other profile
    _report(client, version="24.10.4", outcome="failure")  # the device's own version
    assert _report(client)["channel"] == "caution"  # 1 failure in 4
    for _ in range(7):
        _report(client)
    assert _check(client, "24.10.4")["upgrade"] == {
        "version": "24.10.5", "branch": "24.10", "package_changes": [],
        "channel": "recommended",  # 1 failure in 11
    }
    assert _check(client, "23.05.5")["stable"]["channel"] == "recommended"
    assert _check(client, "24.10.5")["upgrade"] is None  # nothing offered, nothing shown
