"""The read-only ASU routes: overview/branches/latest, revision, package indexes, profile JSON
and stats, in upstream's shapes (research/asu-upstream.md §2.5, asu-clients.md §7).

The app runs in process against a real embedded Redis and the synthetic mirror over HTTP.
"""

from __future__ import annotations

import asyncio

import pytest
from fastapi.responses import Response
from fastapi.testclient import TestClient

from firmforge import __version__
from firmforge.api._json import JSONMemo
from firmforge.api._overview import Overview
from firmforge.config import Settings

VALID = {"version": "24.10.5", "target": "ath79/generic", "profile": "tplink_archer-c7-v5"}
TARGETS = {"x86/64": "x86_64", "ath79/generic": "mips_24kc", "ramips/mt7621": "mipsel_24kc"}


def change(source: str | None, target: str | None, revision: int) -> dict[str, object]:
    entry: dict[str, object] = {"source": source} if source else {}
    if target:
        entry["target"] = target
    entry["revision"] = revision
    return entry


# -- overview, branches, latest ---------------------------------------------------------------


def test_overview_shape(client: TestClient, settings: Settings) -> None:
    response = client.get("/json/v1/overview.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["latest", "branches", "upstream_url", "distributions", "server"]
    assert body["latest"] == ["24.10.5", "23.05.5"]
    assert body["upstream_url"] == settings.upstream_url
    assert body["server"] == {
        "version": __version__,
        "contact": "",
        "allow_defaults": False,
        "repository_allow_list": [],
        "max_custom_rootfs_size_mb": 1024,
        "max_defaults_length": 20480,
        "signing_key_fingerprint": None,  # no key: this app was made without `running()`
    }
    assert list(body["branches"]) == ["24.10", "23.05"]  # newest branch first
    assert body["distributions"] == [{  # only OpenWrt unless more are configured
        "name": "openwrt", "title": "OpenWrt", "versions": ["24.10.5", "24.10.4", "23.05.5"],
        "latest": ["24.10.5", "23.05.5"], "branches": ["24.10", "23.05"],
        "default_packages": [], "feeds": []}]


def test_overview_publishes_the_configured_limits(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    settings = services.settings.model_copy(update={
        "allow_defaults": True, "max_custom_rootfs_size_mb": 512, "max_defaults_length": 100,
        "repository_allow_list": ["https://feeds.example.org/"]})
    server = Overview(services.catalog, settings).document()["server"]
    assert server["allow_defaults"] is True
    assert server["max_custom_rootfs_size_mb"] == 512 and server["max_defaults_length"] == 100
    assert server["repository_allow_list"] == ["https://feeds.example.org/"]


def test_release_branch_objects(client: TestClient) -> None:
    branches = client.get("/json/v1/overview.json").json()["branches"]
    new, old = branches["24.10"], branches["23.05"]
    assert list(new) == ["path", "enabled", "snapshot", "path_packages", "branch_off_rev",
                         "package_changes", "versions", "name", "targets"]
    assert new["path"] == old["path"] == "releases/{version}"
    assert new["enabled"] is True and new["snapshot"] is False
    assert new["path_packages"] == "DEPRECATED"  # auc ignores branches without it
    assert new["name"] == "24.10" and old["name"] == "23.05"
    assert new["versions"] == ["24.10.5", "24.10.4"]
    assert old["versions"] == ["23.05.5"]
    assert new["targets"] == old["targets"] == TARGETS
    assert new["branch_off_rev"] == 27990 and old["branch_off_rev"] == 23069


def test_package_changes_per_branch(client: TestClient) -> None:
    branches = client.get("/json/v1/overview.json").json()["branches"]
    new, old = branches["24.10"]["package_changes"], branches["23.05"]["package_changes"]
    assert change("auc", "owut", 26792) in new
    assert change("luci-app-opkg", "luci-app-package-manager", 27897) in new
    assert change("firewall", "firewall4", 18611) in new and change(
        "firewall", "firewall4", 18611) in old
    assert {"source": "kmod-nft-nat6", "revision": 20282, "mandatory": True} in new
    # made on the main branch after 24.10 branched off: only for later branches
    assert all(entry.get("target") != "apk-mbedtls" for entry in new)
    # 23.05 branched before auc was replaced
    assert all(entry.get("source") != "auc" for entry in old)
    # a rename of the server's table without a known revision: at the branch-off revision
    assert change("luci-app-wireguard", "luci-proto-wireguard", 27990) in new
    for entry in new + old:
        assert isinstance(entry["revision"], int) and entry["revision"] <= 27990
        assert set(entry) <= {"source", "target", "revision", "mandatory"}


def test_branches_and_latest_documents(client: TestClient) -> None:
    overview = client.get("/json/v1/overview.json").json()
    branches = client.get("/json/v1/branches.json").json()
    assert isinstance(branches, list)
    assert branches == list(overview["branches"].values())
    assert client.get("/json/v1/latest.json").json() == {"latest": ["24.10.5", "23.05.5"]}


@pytest.mark.parametrize("alias", ["/api/v1/overview", "/api/overview", "/overview"])
def test_overview_aliases_answer_without_a_redirect(client: TestClient, alias: str) -> None:
    response = client.get(alias, follow_redirects=False)
    assert response.status_code == 200
    assert response.json() == client.get("/json/v1/overview.json").json()


def test_latest_alias(client: TestClient) -> None:
    response = client.get("/api/v1/latest", follow_redirects=False)
    assert response.status_code == 200
    assert response.json() == client.get("/json/v1/latest.json").json()


def test_branch_off_revision_derived_from_the_first_release(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    derived: dict[tuple[str, str], int] = {}
    overview = Overview(services.catalog, services.settings, branch_off={}, derived=derived)
    branches = overview.branches()
    assert branches["24.10"]["branch_off_rev"] == 28959  # 24.10.4 is r28959-…
    assert branches["23.05"]["branch_off_rev"] == 24106  # 23.05.5 is r24106-…
    assert derived == {("24.10", "24.10.4"): 28959, ("23.05", "23.05.5"): 24106}
    assert change("opkg", "apk-mbedtls", 28056) in branches["24.10"]["package_changes"]


def test_snapshot_branch_object(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    overview = Overview(services.catalog, services.settings)
    snapshot = overview.branch("SNAPSHOT", ["SNAPSHOT"])
    assert snapshot["path"] == "snapshots" and snapshot["snapshot"] is True
    assert "branch_off_rev" not in snapshot
    assert change("opkg", "apk-mbedtls", 28056) in snapshot["package_changes"]
    assert snapshot["targets"] == {}  # the synthetic mirror has no snapshots


# -- revision ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "target", "revision"),
    [("24.10.5", "ath79/generic", "r29087-d9c5716d1d"),
     ("24.10.4", "x86/64", "r28959-29397011cc"),
     ("23.05.5", "ramips/mt7621", "r24106-10cc5fcd00")],
)
def test_revision(client: TestClient, version: str, target: str, revision: str) -> None:
    response = client.get(f"/api/v1/revision/{version}/{target}")
    assert response.status_code == 200
    assert response.json() == {"revision": revision}


@pytest.mark.parametrize("version", ["invalid-version", "24.10.99", "99.99.99"])
def test_revision_of_an_unsupported_version_is_400(client: TestClient, version: str) -> None:
    response = client.get(f"/api/v1/revision/{version}/ath79/generic")
    assert response.status_code == 400
    assert response.json() == {"detail": f"Unsupported version: {version}", "status": 400}


def test_revision_of_an_unknown_target_is_404(client: TestClient) -> None:
    response = client.get("/api/v1/revision/24.10.5/x86/32")
    assert response.status_code == 404
    assert response.json() == {"detail": "Failed to fetch revision for 24.10.5/x86/32",
                               "status": 404}


# -- package indexes --------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["24.10.5", "23.05.5"])
def test_target_index_has_target_packages_and_kmods(client: TestClient, version: str) -> None:
    response = client.get(f"/json/v1/releases/{version}/targets/ath79/generic/index.json")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["architecture", "packages"]
    assert body["architecture"] == "mips_24kc"
    packages = body["packages"]
    assert "base-files" in packages  # targets/…/packages
    assert "kmod-ath9k" in packages and "kmod-usb2" in packages  # kmods (own dir in 24.10)
    assert "busybox" not in packages and "luci" not in packages  # arch feeds are separate
    assert "libgcc" in packages and "libgcc1" not in packages  # ABI suffix stripped
    assert all(isinstance(v, str) and v for v in packages.values())


def test_target_index_versions_match_the_catalog(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    full = services.catalog.package_index("24.10.5", "ath79/generic")
    packages = client.get(
        "/json/v1/releases/24.10.5/targets/ath79/generic/index.json").json()["packages"]
    assert packages and all(full.versions[name] == v for name, v in packages.items())


@pytest.mark.parametrize("version", ["24.10.5", "23.05.5"])
def test_arch_index_is_flat_with_abi_stripped_names(client: TestClient, version: str) -> None:
    response = client.get(f"/json/v1/releases/{version}/packages/mips_24kc-index.json")
    assert response.status_code == 200
    packages = response.json()
    assert {"busybox", "luci", "curl", "libubox", "libubus", "babeld"} <= set(packages)
    assert not any(name.startswith(("libubox2", "libubus2")) for name in packages)
    assert "kmod-ath9k" not in packages and "base-files" not in packages
    assert all(isinstance(v, str) and v for v in packages.values())


def test_arch_index_versions(client: TestClient) -> None:
    new = client.get("/json/v1/releases/24.10.5/packages/mips_24kc-index.json").json()
    old = client.get("/json/v1/releases/23.05.5/packages/mips_24kc-index.json").json()
    assert new["libubox"] == "2024.03.29~eb9bcb64-r1"
    assert old["libubox"] == "2024.03.29~eb9bcb64-1"


@pytest.mark.parametrize(
    "url",
    [
        "/json/v1/releases/24.10.99/targets/ath79/generic/index.json",
        "/json/v1/releases/24.10.5/targets/x86/32/index.json",
        "/json/v1/nightlies/24.10.5/targets/ath79/generic/index.json",
        "/json/v1/snapshots/targets/ath79/generic/index.json",
        "/json/v1/releases/24.10.5/packages/sparc-index.json",
        "/json/v1/releases/99.99.99/packages/mips_24kc-index.json",
        "/json/v1/releases/24.10.5/targets/x86/32/generic.json",
        "/json/v1/releases/a/b/targets/ath79/generic/generic.json",
    ],
)
def test_unknown_release_target_or_arch_is_404(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404
    assert isinstance(response.json()["detail"], str)


# -- profile JSON -----------------------------------------------------------------------------


def test_profile_json(client: TestClient) -> None:
    response = client.get("/json/v1/releases/23.05.5/targets/ath79/generic/8dev_carambola2.json")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "arch_packages", "default_packages", "metadata_version", "source_date_epoch", "target",
        "version_code", "version_number", "device_packages", "image_prefix", "images",
        "supported_devices", "titles", "id", "build_at",
    }
    assert body["id"] == "8dev_carambola2"
    assert body["metadata_version"] == 1  # auc requires the integer 1
    assert body["arch_packages"] == "mips_24kc" and body["target"] == "ath79/generic"
    assert body["version_code"] == "r24106-10cc5fcd00" and body["version_number"] == "23.05.5"
    assert body["build_at"] == "2024-09-23T12:34:46.000000Z"  # from source_date_epoch
    assert body["images"] and all({"name", "type", "sha256"} <= set(i) for i in body["images"])


def test_profile_json_24_10_has_the_kernel(client: TestClient) -> None:
    body = client.get(
        "/json/v1/releases/24.10.5/targets/ath79/generic/tplink_archer-c7-v5.json").json()
    assert body["id"] == "tplink_archer-c7-v5"
    assert set(body["linux_kernel"]) == {"version", "release", "vermagic"}
    assert "profiles" not in body


def test_profile_json_by_board_name(client: TestClient) -> None:
    body = client.get(
        "/json/v1/releases/24.10.5/targets/ramips/mt7621/ubnt-erx.json").json()
    assert body["id"] == "ubnt_edgerouter-x"


def test_unknown_profile_is_an_empty_object_with_200(client: TestClient) -> None:
    response = client.get("/json/v1/releases/24.10.5/targets/ath79/generic/vendor_nosuch.json")
    assert response.status_code == 200
    assert response.json() == {}


# -- stats ------------------------------------------------------------------------------------


def test_stats_counts_the_queue(client: TestClient) -> None:
    assert client.get("/api/v1/stats").json() == {
        "queue_length": 0, "imagebuilder_cache_hits": 0, "imagebuilder_cache_misses": 0,
        "imagebuilder_cache_hit_rate": None}
    assert client.post("/api/v1/build", json={**VALID, "packages": ["htop"]}).status_code == 202
    assert client.post("/api/v1/build", json={**VALID, "packages": ["nano"]}).status_code == 202
    assert client.get("/api/v1/stats").json()["queue_length"] == 2


# -- rendered documents in memory -------------------------------------------------------------


def test_memo_serves_a_document_for_its_ttl_and_keeps_a_bounded_number() -> None:
    now = [100.0]
    memo = JSONMemo(ttl=5.0, limit=2, clock=lambda: now[0])
    builds: list[str] = []

    def build(name: str) -> dict[str, str]:
        builds.append(name)
        return {"name": name}

    def respond(name: str) -> bytes:
        return asyncio.run(memo.respond(name, lambda: build(name))).body

    assert respond("a") == respond("a") == b'{"name":"a"}'
    assert builds == ["a"]
    now[0] += 5.0
    respond("a")
    assert builds == ["a", "a"]  # expired: built again from the catalog
    respond("b")
    respond("c")
    assert memo.get("a") is None and memo.get("b") and memo.get("c")  # oldest dropped


def test_memo_does_not_keep_answers_that_are_not_the_document() -> None:
    memo = JSONMemo()
    answer = asyncio.run(memo.respond("x", lambda: Response(b"{}", media_type="application/json")))
    assert answer.body == b"{}"
    assert memo.get("x") is None
