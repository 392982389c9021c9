"""firmforge.catalog against the generated mirror: upstream's exact 400 texts, profile lookup,
package checks with renames, reloading on a miss, refreshing, and concurrent use."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from firmforge.catalog import Catalog, branch_of
from firmforge.errors import UnknownPackagesError, UnsupportedError, UpstreamError
from firmforge.mirror import make_mirror_server
from firmforge.upstream import Upstream, Versions
from tests.conftest import MirrorFixture
from tests.test_upstream import ATH79, BASE, FileTransport, resigned_sums, trusted_key

RENAMES = {"24.10": {"auc": "owut", "luci-app-opkg": "luci-app-package-manager"}}
TARGET_TEXT = (
    "Unsupported target: {}. The requested target was either dropped, is still being built or "
    "is not supported by the selected version. Please check the forums or try again later."
)
PROFILE_TEXT = (
    "Unsupported profile: {}. The requested profile was either dropped or never existed. "
    "Please check the forums for more information."
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def shadow(src: Path, dst: Path, writable: list[str]) -> Path:
    """A cheap writable copy of a mirror: symlinks to ``src`` except along ``writable``
    paths, whose directories are real and whose files are copies."""
    dst.mkdir(parents=True)
    for child in src.iterdir():
        (dst / child.name).symlink_to(child)
    for relative in writable:
        here_src, here_dst = src, dst
        for part in Path(relative).parts[:-1]:
            here_src, here_dst = here_src / part, here_dst / part
            if here_dst.is_symlink():
                here_dst.unlink()
                here_dst.mkdir()
                for child in here_src.iterdir():
                    (here_dst / child.name).symlink_to(child)
        file = dst / relative
        if file.is_symlink():
            file.unlink()
            shutil.copyfile(src / relative, file)
    return dst


@pytest.fixture
def make_catalog(mirror: MirrorFixture) -> Iterator:
    """``(root=mirror.root, overrides=None, **catalog_kw) -> (Catalog, FileTransport)``."""
    clients: list[httpx.Client] = []

    def factory(
        root: Path | None = None, overrides: dict | None = None, **kwargs: Any
    ) -> tuple[Catalog, FileTransport]:
        transport = FileTransport(root or mirror.root, overrides)
        client = httpx.Client(transport=transport)
        clients.append(client)
        upstream = Upstream(BASE, [trusted_key(mirror)], client)
        kwargs.setdefault("renames", RENAMES)
        return Catalog(upstream, **kwargs), transport

    yield factory
    for client in clients:
        client.close()


@pytest.fixture(scope="module")
def catalog(mirror: MirrorFixture) -> Iterator[Catalog]:
    """One catalog over real HTTP, shared by the read-only tests of this module."""
    server = make_mirror_server(mirror.root, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with httpx.Client(timeout=10) as client:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        yield Catalog(Upstream(url, [trusted_key(mirror)], client), renames=RENAMES)
    server.shutdown()
    server.server_close()
    thread.join()


# -- versions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "branch"),
    [
        ("SNAPSHOT", "SNAPSHOT"),
        ("24.10-SNAPSHOT", "24.10"),
        ("24.10.0-rc1", "24.10"),
        ("23.05.5", "23.05"),
        ("10.10.10", "10.10"),
    ],
)
def test_branch_of(version: str, branch: str) -> None:
    assert branch_of(version) == branch


def test_versions_and_latest(catalog: Catalog) -> None:
    assert catalog.versions == ["24.10.5", "24.10.4", "23.05.5"]
    assert catalog.latest == ["24.10.5", "23.05.5"]
    assert catalog.branches == ["24.10", "23.05"]


def test_versions_sort_like_upstream_with_upcoming(make_catalog) -> None:
    document = {
        "stable_version": "24.10.0",
        "oldstable_version": "23.05.5",
        "upcoming_version": "25.12.0-rc1",
        "versions_list": ["23.05.5", "24.10.0-rc6", "24.10-SNAPSHOT", "24.10.0"],
    }
    catalog, _ = make_catalog(overrides={".versions.json": json.dumps(document).encode()})
    assert catalog.versions == [
        "25.12.0-rc1",
        "24.10.0",
        "24.10.0-rc6",
        "24.10-SNAPSHOT",
        "23.05.5",
    ]
    assert catalog.latest == ["25.12.0-rc1", "24.10.0", "23.05.5"]


@pytest.mark.parametrize(
    ("version", "detail"),
    [
        ("10.10.10", "Unsupported branch: 10.10.10"),
        ("99.99.99", "Unsupported branch: 99.99.99"),
        ("SNAPSHOT", "Unsupported branch: SNAPSHOT"),
        ("24.10.99", "Unsupported version: 24.10.99"),
        ("23.05.99", "Unsupported version: 23.05.99"),
        ("24.10-SNAPSHOT", "Unsupported version: 24.10-SNAPSHOT"),
        ("24.10", "Unsupported version: 24.10"),
    ],
)
def test_unsupported_versions(catalog: Catalog, version: str, detail: str) -> None:
    with pytest.raises(UnsupportedError) as caught:
        catalog.check_version(version)
    assert caught.value.detail == detail
    assert caught.value.status_code == 400


def test_known_versions_and_targets_pass(catalog: Catalog) -> None:
    for version in catalog.versions:
        catalog.check_version(version)
        for target in ("x86/64", "ath79/generic", "ramips/mt7621"):
            catalog.check_target(version, target)


@pytest.mark.parametrize("target", ["foo/bar", "ath79", "ath79/generic/x", "../../x"])
def test_unsupported_target(catalog: Catalog, target: str) -> None:
    with pytest.raises(UnsupportedError) as caught:
        catalog.check_target("24.10.5", target)
    assert caught.value.detail == TARGET_TEXT.format(target)


def test_target_of_unknown_version_reports_the_version_first(catalog: Catalog) -> None:
    with pytest.raises(UnsupportedError, match=r"^Unsupported version: 24\.10\.99$"):
        catalog.check_target("24.10.99", "foo/bar")


# -- profiles ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "requested", "profile"),
    [
        ("ath79/generic", "tplink_archer-c7-v5", "tplink_archer-c7-v5"),
        ("ath79/generic", "tplink,archer-c7-v5", "tplink_archer-c7-v5"),
        ("ath79/generic", "archer-c7-v5", "tplink_archer-c7-v5"),
        ("ath79/generic", "8dev,carambola2", "8dev_carambola2"),
        ("ramips/mt7621", "ubnt-erx", "ubnt_edgerouter-x"),
        ("ramips/mt7621", "ubiquiti,edgerouterx", "ubnt_edgerouter-x"),
        ("x86/64", "generic", "generic"),
        ("x86/64", "qemu-standard-pc-i440fx-piix-1996", "generic"),
        ("x86/64", "pc-engines,apu2", "generic"),
    ],
)
def test_resolve_profile(catalog: Catalog, target: str, requested: str, profile: str) -> None:
    assert catalog.resolve_profile("24.10.5", target, requested) == profile


def test_unsupported_profile_text_uses_the_sanitised_name(catalog: Catalog) -> None:
    with pytest.raises(UnsupportedError) as caught:
        catalog.resolve_profile("24.10.5", "ath79/generic", "testvendor,testprofile")
    assert caught.value.detail == PROFILE_TEXT.format("testvendor_testprofile")


class FakeUpstream:
    """Just enough of ``Upstream`` for a catalog over hand-written profiles."""

    def __init__(self, profiles: dict[str, Any]) -> None:
        self.document = {"arch_packages": "arch", "profiles": profiles}

    version_path = staticmethod(Upstream.version_path)

    def versions(self) -> Versions:
        return Versions("1.0.0", "", "", ("1.0.0",))

    def targets(self, version: str) -> dict[str, str]:
        return {"t/s": "arch"}

    def profiles(self, version: str, target: str) -> dict[str, Any]:
        return self.document

    def invalidate(self, path: str = "") -> None:
        pass


def test_profile_id_beats_a_supported_devices_entry_of_another_profile() -> None:
    profiles = {
        "vendor_box": {"supported_devices": ["vendor,box"]},
        "vendor_box-v2": {"supported_devices": ["vendor,box-v2", "vendor_box"]},
        "other_a": {"supported_devices": ["legacy-name", "shared,board"]},
        "other_b": {"supported_devices": ["shared,board", "x"]},
    }
    catalog = Catalog(FakeUpstream(profiles))  # type: ignore[arg-type]
    assert catalog.resolve_profile("1.0.0", "t/s", "vendor_box") == "vendor_box"
    assert catalog.resolve_profile("1.0.0", "t/s", "vendor,box") == "vendor_box"
    # the profile that lists the board name first (its primary compatible) wins
    assert catalog.resolve_profile("1.0.0", "t/s", "shared,board") == "other_b"


# -- packages ----------------------------------------------------------------------------------


def test_every_unknown_package_is_named_with_renames(catalog: Catalog) -> None:
    packages = ["luci", "auc", "no-such-pkg", "-ppp", "-also-unknown", "libubox20240329", "auc"]
    with pytest.raises(UnknownPackagesError) as caught:
        catalog.check_packages("24.10.5", "ath79/generic", packages)
    error = caught.value
    assert error.unknown == ["auc", "no-such-pkg"]
    assert error.renames == {"auc": "owut"}
    assert error.detail == "Unknown package(s): no-such-pkg, auc (renamed to owut)"
    assert error.status_code == 400


def test_known_packages_pass(catalog: Catalog) -> None:
    catalog.check_packages(
        "24.10.5",
        "ath79/generic",
        ["owut", "luci", "kmod-ath9k", "libubox", "libc", "kernel", "luci-app-opkg", "-nope"],
    )
    catalog.check_packages("23.05.5", "ath79/generic", ["auc", "luci", "kmod-ath9k"])
    catalog.check_packages("24.10.5", "x86/64", [])


def test_views(catalog: Catalog) -> None:
    assert catalog.arch_of("24.10.5", "ramips/mt7621") == "mipsel_24kc"
    assert catalog.targets("23.05.5")["x86/64"] == "x86_64"
    assert catalog.profiles("24.10.5", "x86/64")["profiles"].keys() == {"generic"}
    index = catalog.package_index("24.10.5", "x86/64")
    assert "kmod-e1000e" in index and "grub2-bios-setup" in index
    assert catalog.package_index("24.10.5", "x86/64") is index
    assert catalog.renames_for("24.10.5") == RENAMES["24.10"]
    assert catalog.renames_for("23.05.5") == {}


def test_views_validate_before_touching_the_mirror(make_catalog) -> None:
    catalog, transport = make_catalog()
    with pytest.raises(UnsupportedError, match=r"^Unsupported target: \.\./\.\./etc\. "):
        catalog.profiles("24.10.5", "../../etc")
    assert all("etc" not in path for path in transport.requests)


# -- reloading on a miss -----------------------------------------------------------------------


def _publish(root: Path, version: str, like: str) -> None:
    """Publish ``version`` on a shadow mirror: a copy of ``like`` under a new name."""
    (root / "releases" / version).symlink_to((root / "releases" / like).resolve())
    path = root / ".versions.json"
    document = json.loads(path.read_text())
    document["versions_list"].insert(0, version)
    document["stable_version"] = version
    path.write_text(json.dumps(document))


def test_a_new_release_is_accepted_without_restart(mirror: MirrorFixture, tmp_path: Path) -> None:
    root = shadow(mirror.root, tmp_path / "tree", [".versions.json", "releases/x"])
    server = make_mirror_server(root, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with httpx.Client(timeout=10) as client:
            url = f"http://127.0.0.1:{server.server_address[1]}"
            catalog = Catalog(Upstream(url, [trusted_key(mirror)], client))
            assert catalog.versions == ["24.10.5", "24.10.4", "23.05.5"]
            _publish(root, "24.10.6", like="24.10.5")
            _publish(root, "25.12.0", like="24.10.5")
            catalog.check_version("24.10.6")
            catalog.check_version("25.12.0")
            assert catalog.latest == ["25.12.0", "23.05.5"]
            assert catalog.resolve_profile("25.12.0", "ath79/generic", "tplink,archer-c7-v5") == (
                "tplink_archer-c7-v5"
            )
            catalog.check_packages("24.10.6", "ath79/generic", ["owut"])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_miss_reloads_are_rate_limited(make_catalog, mirror, tmp_path: Path) -> None:
    root = shadow(mirror.root, tmp_path / "tree", [".versions.json", "releases/x"])
    clock = Clock()
    catalog, transport = make_catalog(root, clock=clock, miss_reload_interval=30)
    catalog.check_version("24.10.5")
    assert transport.count(".versions.json") == 1

    with pytest.raises(UnsupportedError, match=r"^Unsupported version: 24\.10\.7$"):
        catalog.check_version("24.10.7")  # a miss: one reload
    assert transport.count(".versions.json") == 2
    with pytest.raises(UnsupportedError, match=r"^Unsupported branch: 26\.01\.0$"):
        catalog.check_version("26.01.0")  # another miss within the interval: no reload
    assert transport.count(".versions.json") == 2

    _publish(root, "24.10.7", like="24.10.5")
    clock.now += 10
    with pytest.raises(UnsupportedError):
        catalog.check_version("24.10.7")
    assert transport.count(".versions.json") == 2
    clock.now += 21
    catalog.check_version("24.10.7")
    assert transport.count(".versions.json") == 3


def test_a_failing_mirror_during_a_miss_still_gives_the_400(make_catalog) -> None:
    overrides: dict = {}
    catalog, _ = make_catalog(overrides=overrides)
    catalog.check_target("24.10.5", "x86/64")
    overrides[".versions.json"] = 503
    overrides["releases/24.10.5/.targets.json"] = 503
    with pytest.raises(UnsupportedError, match=r"^Unsupported version: 24\.10\.99$"):
        catalog.check_version("24.10.99")
    with pytest.raises(UnsupportedError, match=r"^Unsupported target: foo/bar\."):
        catalog.check_target("24.10.5", "foo/bar")
    catalog.check_target("24.10.5", "x86/64")  # what was loaded before stays


def test_a_new_target_is_accepted_after_one_reload(make_catalog, mirror, tmp_path: Path) -> None:
    targets = "releases/24.10.5/.targets.json"
    root = shadow(mirror.root, tmp_path / "tree", [targets])
    original = (root / targets).read_text()
    (root / targets).write_text(json.dumps({"x86/64": "x86_64"}))
    catalog, transport = make_catalog(root)
    assert catalog.targets("24.10.5") == {"x86/64": "x86_64"}

    (root / targets).write_text(original)
    catalog.check_target("24.10.5", "ath79/generic")
    assert transport.count(targets) == 2
    with pytest.raises(UnsupportedError, match=r"^Unsupported target: foo/bar\."):
        catalog.check_target("24.10.5", "foo/bar")  # within miss_reload_interval: no reload
    assert transport.count(targets) == 2


def test_a_new_profile_is_accepted_after_one_reload(make_catalog, mirror, tmp_path: Path) -> None:
    files = [f"{ATH79}/profiles.json", f"{ATH79}/sha256sums", f"{ATH79}/sha256sums.sig"]
    root = shadow(mirror.root, tmp_path / "tree", files)
    saved = {name: (root / name).read_bytes() for name in files}
    # before: the mirror does not have the Archer C7 v5 yet (consistently signed)
    document = json.loads(saved[files[0]])
    del document["profiles"]["tplink_archer-c7-v5"]
    profiles = json.dumps(document).encode()
    (root / files[0]).write_bytes(profiles)
    digest = hashlib.sha256(profiles).hexdigest()
    for path, content in resigned_sums(mirror, ATH79, {"profiles.json": digest}).items():
        (root / path).write_bytes(content)

    catalog, _ = make_catalog(root)
    assert catalog.resolve_profile("24.10.5", "ath79/generic", "8dev,carambola2")
    for name, content in saved.items():
        (root / name).write_bytes(content)
    assert catalog.resolve_profile("24.10.5", "ath79/generic", "tplink,archer-c7-v5") == (
        "tplink_archer-c7-v5"
    )


# -- refreshing --------------------------------------------------------------------------------


def test_maybe_refresh_reloads_when_due_and_drops_per_version_data(make_catalog) -> None:
    clock = Clock()
    catalog, transport = make_catalog(clock=clock, refresh_interval=300)
    assert catalog.maybe_refresh() is True
    assert catalog.maybe_refresh() is False
    catalog.check_packages("24.10.5", "x86/64", ["luci"])
    catalog.check_packages("24.10.5", "x86/64", ["luci"])
    base = "releases/24.10.5/packages/x86_64/base/Packages"
    assert (transport.count(".versions.json"), transport.count(base)) == (1, 1)

    clock.now += 299
    assert catalog.maybe_refresh() is False
    clock.now += 1
    assert catalog.maybe_refresh() is True
    catalog.check_packages("24.10.5", "x86/64", ["luci"])
    assert (transport.count(".versions.json"), transport.count(base)) == (2, 2)


def test_refresh_sees_a_changed_release_list(make_catalog, mirror, tmp_path: Path) -> None:
    root = shadow(mirror.root, tmp_path / "tree", [".versions.json", "releases/x"])
    catalog, _ = make_catalog(root)
    assert catalog.latest == ["24.10.5", "23.05.5"]
    _publish(root, "24.10.6", like="24.10.5")
    catalog.refresh()
    assert catalog.latest == ["24.10.6", "23.05.5"]
    assert catalog.versions[0] == "24.10.6"


def test_a_failed_refresh_keeps_the_data_and_backs_off(make_catalog) -> None:
    clock = Clock()
    overrides: dict = {}
    catalog, transport = make_catalog(
        overrides=overrides, clock=clock, refresh_interval=300, miss_reload_interval=30
    )
    catalog.refresh()
    clock.now += 300
    overrides[".versions.json"] = 503
    with pytest.raises(UpstreamError, match="HTTP 503"):
        catalog.maybe_refresh()
    assert catalog.versions == ["24.10.5", "24.10.4", "23.05.5"]
    assert catalog.maybe_refresh() is False  # no hammering of a broken mirror
    clock.now += 30
    del overrides[".versions.json"]
    assert catalog.maybe_refresh() is True
    assert transport.count(".versions.json") == 3


# -- concurrency -------------------------------------------------------------------------------


def test_concurrent_requests_share_one_load(make_catalog) -> None:
    catalog, transport = make_catalog()
    errors: list[BaseException] = []
    results: list[str] = []
    barrier = threading.Barrier(8)

    def request() -> None:
        try:
            barrier.wait()
            catalog.check_version("24.10.5")
            catalog.check_target("24.10.5", "ath79/generic")
            results.append(catalog.resolve_profile("24.10.5", "ath79/generic", "glinet,gl-ar150"))
            catalog.check_packages("24.10.5", "ath79/generic", ["luci", "owut"])
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == ["glinet_gl-ar150"] * 8
    assert transport.count(".versions.json") == 1
    assert transport.count(f"{ATH79}/profiles.json") == 1
    assert transport.count("releases/24.10.5/packages/mips_24kc/luci/Packages") == 1
