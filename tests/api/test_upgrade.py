"""``POST /api/v1/upgrade-check`` over HTTP against the synthetic mirror.

The mirror has 23.05.5, 24.10.4 and 24.10.5; 24.10.5 bumps the release of dnsmasq, dropbear,
luci-base, netifd and curl (and its kernel), and 24.10 renames auc to owut.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from firmforge.api._upgrade import UpgradeCheck
from firmforge.catalog import Catalog
from firmforge.config import DistributionConfig
from firmforge.distributions import Distribution
from firmforge.errors import UnsupportedError

TARGET, PROFILE = "ath79/generic", "tplink_archer-c7-v5"
URL = "/api/v1/upgrade-check"


def _catalog(client: TestClient) -> Catalog:
    return client.app.state.services.catalog  # type: ignore[attr-defined,no-any-return]


def _installed(client: TestClient, version: str, *, raw: bool = False) -> dict[str, str]:
    """Every package of the version's feeds as installed, ABI-suffixed names if ``raw``."""
    index = _catalog(client).package_index(version, TARGET)
    packages = dict(index.versions)
    if raw:
        for raw_name, name in index.stripped.items():
            packages[raw_name] = packages.pop(name)
    return packages


def _check(client: TestClient, version: str, packages: dict[str, str], **extra: Any) -> Any:
    body = {"version": version, "target": TARGET, "profile": PROFILE, "packages": packages,
            **extra}
    response = client.post(URL, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_newer_release_in_the_branch(client: TestClient) -> None:
    packages = {**_installed(client, "24.10.4"), "auc": "0.3.2-r1"}
    answer = _check(client, "24.10.4", packages, profile="tplink,archer-c7-v5")
    assert answer["status"] == "upgrade_available"
    assert answer["profile"] == PROFILE  # the board name resolved
    assert (answer["version"], answer["branch"]) == ("24.10.4", "24.10")
    assert answer["upgrade"] == {
        "version": "24.10.5", "branch": "24.10",
        "package_changes": [{"source": "auc", "target": "owut"}], "channel": "unknown",
    }
    assert answer["stable"] is None  # 24.10.5 is the newest and in the same branch
    assert answer["package_updates"] == []


def test_newer_stable_branch_with_renames(client: TestClient) -> None:
    installed = _installed(client, "23.05.5")
    answer = _check(client, "23.05.5", installed)
    assert answer["status"] == "upgrade_available"
    assert answer["upgrade"] is None  # 23.05.5 is its branch's newest
    assert answer["stable"]["version"] == "24.10.5"
    assert answer["stable"]["branch"] == "24.10"
    changes = answer["stable"]["package_changes"]
    assert {"source": "auc", "target": "owut"} in changes
    assert {"source": "luci-app-wireguard", "target": "luci-proto-wireguard"} in changes
    assert all(change["source"] in installed for change in changes)  # only what applies
    bare = _check(client, "23.05.5", {"auc": installed["auc"]})
    assert bare["stable"]["package_changes"] == [{"source": "auc", "target": "owut"}]


def test_package_updates(client: TestClient) -> None:
    current = _installed(client, "24.10.5")
    older = _installed(client, "24.10.4")
    bumped = ["curl", "dnsmasq", "dropbear", "luci-base", "netifd"]
    packages = {**current, **{name: older[name] for name in bumped}}
    packages["libubox"] = "2099.01.01~ffffffff-r1"  # newer than the feed: no update
    packages["local-only"] = "1.0-r1"  # in no feed: ignored
    answer = _check(client, "24.10.5", packages)
    assert answer["status"] == "package_updates"
    assert answer["upgrade"] is None and answer["stable"] is None
    assert answer["package_updates"] == [
        {"name": name, "installed": older[name], "available": current[name]} for name in bumped
    ]
    assert {"name": "netifd", "installed": "2024.01.04~c18cc79d-r1",
            "available": "2024.01.04~c18cc79d-r2"} in answer["package_updates"]


def test_abi_suffixed_names(client: TestClient) -> None:
    packages = _installed(client, "24.10.5", raw=True)
    raw_name = next(name for name in packages if name.startswith("libubox"))
    assert raw_name != "libubox"
    packages[raw_name] = "2024.03.29~00000000-r0"
    answer = _check(client, "24.10.5", packages)
    assert answer["package_updates"] == [
        {"name": raw_name, "installed": "2024.03.29~00000000-r0",
         "available": _installed(client, "24.10.5")["libubox"]}
    ]


def test_up_to_date(client: TestClient) -> None:
    for raw in (False, True):
        answer = _check(client, "24.10.5", _installed(client, "24.10.5", raw=raw))
        assert answer["status"] == "up_to_date"
        assert answer["package_updates"] == []
    assert _check(client, "24.10.5", {})["status"] == "up_to_date"  # no packages sent


def test_unknown_fields_ignored_and_defaults(client: TestClient) -> None:
    answer = _check(client, "24.10.5", {}, distro="openwrt", rootfs_size_mb=1, version_code="x")
    assert answer["status"] == "up_to_date"


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"version": "99.99.0"}, "Unsupported branch: 99.99.0"),
        ({"version": "24.10.9"}, "Unsupported version: 24.10.9"),
        ({"target": "nope/nope"}, "Unsupported target: nope/nope."),
        ({"profile": "no,such-board"}, "Unsupported profile: no_such-board."),
        ({"distro": "libremesh-x"}, "Unsupported distro: libremesh-x"),
    ],
)
def test_refusals(client: TestClient, change: dict[str, str], detail: str) -> None:
    body = {"version": "24.10.5", "target": TARGET, "profile": PROFILE, "packages": {},
            **change}
    response = client.post(URL, json=body)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail)
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize(
    "body",
    [
        {"target": TARGET, "profile": PROFILE},  # no version
        {"version": "24.10.5", "target": TARGET, "profile": PROFILE,
         "packages": [{"name": "curl", "version": "1"}]},  # a list, not an object
        {"version": "24.10.5", "target": TARGET, "profile": PROFILE,
         "packages": {"curl": "1 2"}},  # not a version
        {"version": "24.10.5", "target": "ath79", "profile": PROFILE},
    ],
)
def test_invalid_bodies(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post(URL, json=body)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)


def test_documented_in_openapi(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"][URL]["post"]
    assert "`packages` is an object `{name: installed version}`" in operation["description"]
    fields = schema["components"]["schemas"]["UpgradeCheckRequest"]["properties"]
    assert fields["packages"]["type"] == "object"
    assert "ABI suffix" in fields["packages"]["description"]


class _FakeCatalog:
    """Just what ``UpgradeCheck.offers`` reads."""

    def __init__(self, targets: dict[str, list[str]]) -> None:
        self._targets = targets

    @property
    def versions(self) -> list[str]:
        return list(self._targets)

    def targets(self, version: str) -> dict[str, str]:
        if version not in self._targets:
            raise UnsupportedError(f"Unsupported version: {version}")
        return dict.fromkeys(self._targets[version], "mips_24kc")

    def renames_for(self, version: str) -> dict[str, str]:
        return {"auc": "owut"} if version.startswith("25.") else {}


def _offers(targets: dict[str, list[str]], version: str) -> tuple[str | None, str | None]:
    openwrt = Distribution(DistributionConfig(name="openwrt"), _FakeCatalog(targets))  # type: ignore[arg-type]
    check = UpgradeCheck(openwrt)
    upgrade, stable = check.offers(version, TARGET)
    return (upgrade.version if upgrade else None, stable.version if stable else None)


def test_offers_release_candidates_only_to_release_candidates() -> None:
    both = [TARGET]
    versions = {"SNAPSHOT": both, "25.12.0-rc2": both, "24.10.10": both, "24.10.9": both,
                "24.10.0-rc7": both, "23.05.5": both}
    assert _offers(versions, "24.10.9") == ("24.10.10", None)  # 24.10.10 > 24.10.9
    assert _offers(versions, "23.05.5") == (None, "24.10.10")
    assert _offers(versions, "24.10.0-rc7") == ("24.10.10", "25.12.0-rc2")
    assert _offers({**versions, "25.12.0-rc3": both}, "25.12.0-rc2") == ("25.12.0-rc3", None)
    assert _offers(versions, "SNAPSHOT") == (None, None)
    assert _offers(versions, "24.10-SNAPSHOT") == (None, None)


def test_offers_skip_releases_without_the_target() -> None:
    versions = {"25.12.0": ["x86/64"], "24.10.10": [TARGET], "24.10.9": [TARGET]}
    assert _offers(versions, "24.10.9") == ("24.10.10", None)
    assert _offers({"26.01.0": [TARGET], **versions}, "24.10.10") == (None, "26.01.0")
