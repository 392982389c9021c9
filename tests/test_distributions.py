"""Distributions side by side: OpenWrt and LibreMesh (OpenWrt's releases plus its own signed
feeds and default packages), chosen by a request's ``distro``.

The API runs in process against the synthetic mirror and the synthetic LibreMesh feed host, both
over HTTP; the builds themselves are in ``test_server_libremesh.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from firmforge.config import DistributionConfig, Settings
from firmforge.distributions import JOB_KEY, BuildAdditions, merge_packages
from firmforge.mirror._libremesh import DEFAULT_PACKAGES
from firmforge.request import BuildRequest
from firmforge.usign import SecretKey
from tests.conftest import LibremeshFeed, MirrorFixture
from tests.server_fixtures import (
    app_client,
    app_settings,
    mirror_over_http,
    serve_directory,
)

DEVICE = {"version": "24.10.5", "target": "ath79/generic", "profile": "tplink,archer-c7-v5"}


# -- the package merge -------------------------------------------------------------------------


def test_defaults_come_first_and_the_request_wins() -> None:
    defaults = ["lime-system", "lime-app", "-dnsmasq"]
    assert merge_packages(defaults, ["htop"]) == ["lime-system", "lime-app", "-dnsmasq", "htop"]
    # the user opts out of a default, and back into what the distribution removed
    assert merge_packages(defaults, ["-lime-app", "dnsmasq"]) == [
        "lime-system", "-lime-app", "dnsmasq"]
    assert merge_packages(defaults, ["lime-system", "lime-system"]) == [
        "lime-app", "-dnsmasq", "lime-system"]
    assert merge_packages([], ["a", "b"]) == ["a", "b"]


def test_additions_travel_with_the_job_and_add_feeds_before_the_requests() -> None:
    additions = BuildAdditions(packages=("lime-system",),
                               repositories={"libremesh": "http://feed/lm"},
                               repository_keys=("KEY",))
    restored = BuildAdditions.from_job({"version": "x", JOB_KEY: additions.as_json()})
    assert restored == additions
    assert not BuildAdditions.from_job({"version": "x"})
    request = BuildRequest(version="24.10.5", target="ath79/generic", profile="p",
                           repositories={"mine": "http://feed/mine"}, repository_keys=["MINE"])
    merged = restored.with_feeds(request)
    assert merged.repositories == {"libremesh": "http://feed/lm", "mine": "http://feed/mine"}
    assert merged.repository_keys == ["KEY", "MINE"]
    assert restored.packages_for(["htop"]) == ["lime-system", "htop"]


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(("entry", "problem"), [
    ({"name": "LibreMesh"}, "name"),
    ({"name": "lm", "upstream_url": "ftp://feed"}, "http(s)"),
    ({"name": "lm", "upstream_url": "http://f", "feeds": {"x": "../{arch}"}}, "bad path"),
    ({"name": "lm", "upstream_url": "http://f", "feeds": {"x": "{target}"}}, "bad path"),
    ({"name": "lm", "upstream_url": "http://f", "feeds": {"a b": "x"}}, "feed name"),
    ({"name": "lm", "packages": ["lime system"]}, "not a package name"),
])
def test_bad_distribution_entries_are_refused(entry: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        DistributionConfig.model_validate(entry)


def test_settings_refuse_twice_named_or_feeds_without_a_host() -> None:
    with pytest.raises(ValidationError, match="named twice: lm"):
        Settings(distributions=[{"name": "lm"}, {"name": "lm"}])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="feeds need an upstream_url"):
        Settings(distributions=[{"name": "lm", "feeds": {"x": "{arch}"}}])  # type: ignore[list-item]


def test_openwrt_comes_first_and_an_openwrt_entry_amends_it(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    monkeypatch.setenv("FIRMFORGE_DISTRIBUTIONS", json.dumps([
        {"name": "libremesh", "upstream_url": "http://feed", "feeds": {"lm": "{arch}"}},
        {"name": "openwrt", "branches": ["24.10"], "packages": ["htop"]},
    ]))
    configs = Settings(upstream_url="http://mirror", upstream_key=[tmp_path / "k.pub"]
                       ).distribution_configs
    assert [c.name for c in configs] == ["openwrt", "libremesh"]
    openwrt = configs[0]
    assert openwrt.upstream_url == "http://mirror" and openwrt.keys == [tmp_path / "k.pub"]
    assert openwrt.branches == ["24.10"] and openwrt.packages == ["htop"]
    assert openwrt.title == "OpenWrt"  # not set by the entry: kept


# -- the API with LibreMesh configured ---------------------------------------------------------


@pytest.fixture(scope="module")
def settings(mirror: MirrorFixture, libremesh_feed: LibremeshFeed, redis_url: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with mirror_over_http(mirror.root) as mirror_url, \
            serve_directory(libremesh_feed.root) as feed_url:
        yield app_settings(
            tmp_path_factory.mktemp("data"), mirror_url, mirror.public_key, redis_url,
            distributions=[libremesh_feed.distribution(feed_url, branches=["24.10"])])


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with app_client(settings) as test_client:
        yield test_client


def test_overview_lists_both_distributions(client: TestClient) -> None:
    distributions = client.get("/json/v1/overview.json").json()["distributions"]
    assert [d["name"] for d in distributions] == ["openwrt", "libremesh"]
    openwrt, libremesh = distributions
    assert openwrt["versions"] == ["24.10.5", "24.10.4", "23.05.5"]
    assert libremesh["title"] == "LibreMesh"
    assert libremesh["versions"] == ["24.10.5", "24.10.4"]  # its branches only
    assert libremesh["branches"] == ["24.10"] and libremesh["latest"] == ["24.10.5"]
    assert libremesh["default_packages"] == list(DEFAULT_PACKAGES)
    assert libremesh["feeds"] == ["libremesh", "libremesh_profiles"]


def test_a_libremesh_request_accepts_lime_packages_and_carries_the_additions(
    client: TestClient, settings: Settings
) -> None:
    response = client.post("/api/v1/build", json={
        **DEVICE, "distro": "libremesh",
        "packages": ["lime-docs", "profile-libremesh-suggested-packages", "htop"]})
    assert response.status_code == 202, response.text
    job = client.app.state.services.queue.fetch(response.json()["request_hash"])  # type: ignore[attr-defined]
    additions = BuildAdditions.from_job(job.request)
    assert additions.packages == DEFAULT_PACKAGES
    feed_url = settings.distributions[0].upstream_url
    assert additions.repositories == {
        "libremesh": f"{feed_url}/master/openwrt-24.10/mips_24kc",
        "libremesh_profiles": f"{feed_url}/profiles/openwrt-24.10/mips_24kc",
    }
    [key] = additions.repository_keys
    assert key == settings.distributions[0].keys[0].read_text()


def test_lime_packages_are_unknown_to_openwrt_and_unknown_lime_packages_to_libremesh(
    client: TestClient,
) -> None:
    openwrt = client.post("/api/v1/build", json={**DEVICE, "packages": ["lime-app"]})
    assert openwrt.status_code == 400
    assert "lime-app" in openwrt.json()["detail"]
    libremesh = client.post("/api/v1/build", json={
        **DEVICE, "distro": "libremesh", "packages": ["lime-app", "lime-nonexistent"]})
    assert libremesh.status_code == 400
    detail = libremesh.json()["detail"]
    assert "lime-nonexistent" in detail and "lime-app" not in detail


def test_distro_and_branch_refusals(client: TestClient) -> None:
    unknown = client.post("/api/v1/build", json={**DEVICE, "distro": "freifunk"})
    assert unknown.status_code == 400
    assert unknown.json()["detail"] == "Unsupported distro: freifunk"
    old = client.post("/api/v1/build", json={
        **DEVICE, "version": "23.05.5", "distro": "libremesh"})
    assert old.status_code == 400
    assert old.json()["detail"] == "Unsupported branch: 23.05.5"
    # OpenWrt still offers 23.05
    assert client.post("/api/v1/build", json={**DEVICE, "version": "23.05.5"}).status_code == 202


def test_the_same_request_for_two_distributions_is_two_builds(client: TestClient) -> None:
    openwrt = client.post("/api/v1/build", json=DEVICE).json()["request_hash"]
    libremesh = client.post("/api/v1/build", json={**DEVICE, "distro": "libremesh"}).json()
    assert libremesh["request_hash"] != openwrt


def test_upgrade_check_knows_lime_package_versions(client: TestClient) -> None:
    answer = client.post("/api/v1/upgrade-check", json={
        **DEVICE, "distro": "libremesh", "version": "24.10.5",
        "packages": {"lime-system": "2024.1-r1", "lime-app": "2024.1-r4", "htop": "0.1-r1"}})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "package_updates"
    names = {u["name"]: u["available"] for u in body["package_updates"]}
    assert names["lime-system"] == "2024.1-r4" and "lime-app" not in names
    refused = client.post("/api/v1/upgrade-check", json={
        **DEVICE, "distro": "libremesh", "version": "23.05.5", "packages": {}})
    assert refused.status_code == 400


def test_a_feed_signed_by_another_key_is_refused_clearly(
    mirror: MirrorFixture, libremesh_feed: LibremeshFeed, redis_url: str, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger.pub"
    stranger.write_text(SecretKey.from_seed(bytes(range(32)), b"stranger").public_key.to_text())
    with mirror_over_http(mirror.root) as mirror_url, \
            serve_directory(libremesh_feed.root) as feed_url:
        settings = app_settings(
            tmp_path, mirror_url, mirror.public_key, redis_url,
            distributions=[libremesh_feed.distribution(feed_url, keys=[str(stranger)])])
        with app_client(settings) as client:
            response = client.post("/api/v1/build", json={
                **DEVICE, "distro": "libremesh", "packages": ["lime-docs"]})
    assert response.status_code == 502, response.text  # the feed host, not the request, is bad
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "No trusted key" in detail and "Packages.sig" in detail


def test_seed_era_update_request_names_the_distribution(client: TestClient) -> None:
    answer = client.post("/update-request", json={
        "distro": "LibreMesh", "version": "24.10.4", "target": "ath79", "subtarget": "generic",
        "packages": {"lime-system": "2024.1-r4"}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == "24.10.5"
    unknown = client.post("/update-request", json={
        "distro": "lime", "version": "24.10.4", "target": "ath79", "subtarget": "generic"})
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "unknown distribution lime"


def test_the_distribution_feed_index_route(client: TestClient) -> None:
    own = client.get("/api/v1/distributions/libremesh/24.10.5/ath79/generic/packages")
    assert own.status_code == 200, own.text
    body = own.json()
    assert body["architecture"] == "mips_24kc"
    assert body["packages"]["lime-system"] == "2024.1-r4"
    assert "shared-state-async" in body["packages"] and "htop" not in body["packages"]
    openwrt = client.get("/api/v1/distributions/openwrt/24.10.5/ath79/generic/packages")
    assert openwrt.json()["packages"] == {}
    for path, detail in [
        ("/api/v1/distributions/freifunk/24.10.5/ath79/generic/packages",
         "Unsupported distro: freifunk"),
        ("/api/v1/distributions/libremesh/23.05.5/ath79/generic/packages",
         "Unsupported branch: 23.05.5"),
    ]:
        refused = client.get(path)
        assert refused.status_code == 400 and refused.json()["detail"] == detail
    assert client.get("/api/v1/distributions/libremesh/24.10.5/nope/x/packages"
                      ).status_code == 400
