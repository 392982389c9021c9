"""Reading make info / make manifest / opkg and apk errors, and writing PACKAGES."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from firmforge.errors import BuildError, PackageSelectionError
from firmforge.imagebuilder import (
    ImageBuilderInfo,
    ProfileInfo,
    diff_packages,
    image_too_big,
    info_command,
    manifest_command,
    package_selection_error,
    parse_info,
    parse_manifest,
    run_make,
)

IB = Callable[[str, str], Path]

ATH79_INFO = """\
Current Target: "ath79/generic"
Current Architecture: "mips"
Current Revision: "r24106-10cc5fcd00"
Default Packages: base-files ca-bundle dropbear wpad-basic-mbedtls
Available Profiles:

8dev_carambola2:
    8devices Carambola2
    Packages: kmod-usb-chipidea2
    hasImageMetadata: 1
    SupportedDevices: 8dev,carambola2 carambola2
untitled_board:
    Packages: -wpad-basic-mbedtls wpad-mbedtls
    hasImageMetadata: 0
tplink_archer-c7-v5:
    TP-Link Archer C7 v5
    Packages: kmod-usb2 kmod-usb-ledtrig-usbport kmod-ath10k-ct ath10k-firmware-qca988x-ct
    hasImageMetadata: 1
    SupportedDevices: tplink,archer-c7-v5 archer-c7-v5
generic:
    Generic x86/64
    Packages:
    hasImageMetadata: 0
"""


def test_parse_info_hand_written() -> None:
    info = parse_info(ATH79_INFO)
    assert info == ImageBuilderInfo(
        target="ath79/generic",
        arch="mips",
        revision="r24106-10cc5fcd00",
        default_packages=["base-files", "ca-bundle", "dropbear", "wpad-basic-mbedtls"],
        profiles={
            "8dev_carambola2": ProfileInfo(
                "8devices Carambola2", ["kmod-usb-chipidea2"], ["8dev,carambola2", "carambola2"]
            ),
            "untitled_board": ProfileInfo(None, ["-wpad-basic-mbedtls", "wpad-mbedtls"], []),
            "tplink_archer-c7-v5": ProfileInfo(
                "TP-Link Archer C7 v5",
                [
                    "kmod-usb2",
                    "kmod-usb-ledtrig-usbport",
                    "kmod-ath10k-ct",
                    "ath10k-firmware-qca988x-ct",
                ],
                ["tplink,archer-c7-v5", "archer-c7-v5"],
            ),
            "generic": ProfileInfo("Generic x86/64", [], []),
        },
    )
    assert list(info.profiles) == [
        "8dev_carambola2",
        "untitled_board",
        "tplink_archer-c7-v5",
        "generic",
    ]


def test_parse_info_older_layout_without_architecture() -> None:
    text = ATH79_INFO.replace('Current Architecture: "mips"\n', "")
    info = parse_info(text)
    assert info.arch is None
    assert info.revision == "r24106-10cc5fcd00"


@pytest.mark.parametrize(
    ("line", "missing"),
    [
        ('Current Revision: "r24106-10cc5fcd00"\n', "Current Revision"),
        ("Available Profiles:\n", "Available Profiles"),
        (
            "Default Packages: base-files ca-bundle dropbear wpad-basic-mbedtls\n",
            "Default Packages",
        ),
    ],
)
def test_parse_info_refuses_incomplete_output(line: str, missing: str) -> None:
    with pytest.raises(BuildError, match=f"no {missing}") as caught:
        parse_info(ATH79_INFO.replace(line, ""))
    assert caught.value.stage == "info"


@pytest.mark.parametrize(
    ("version", "target"),
    [("24.10.5", "x86/64"), ("23.05.5", "ath79/generic"), ("24.10.4", "ramips/mt7621")],
)
def test_parse_info_of_a_real_make_info(imagebuilder: IB, version: str, target: str) -> None:
    ib = imagebuilder(version, target)
    result = run_make(ib, info_command(), 60, "info")
    assert result.returncode == 0, result.stderr
    info = parse_info(result.stdout)
    truth = json.loads((ib / ".targetinfo.json").read_text())
    assert info.target == target
    assert info.arch == truth["arch"]
    assert info.revision == truth["version_code"]
    assert info.default_packages == truth["default_packages"]
    assert list(info.profiles) == [device["id"] for device in truth["devices"]]
    for device in truth["devices"]:
        profile = info.profiles[device["id"]]
        assert profile.title == (device["title"] or None)
        assert profile.packages == device["packages"]
        assert profile.supported_devices == device["supported_devices"]


def test_parse_manifest_formats() -> None:
    opkg = (
        "base-files - 1528-r24106-10cc5fcd00\n"
        "kernel - 6.6.86~abc-r1\n"
        "libubox20230523 - 2023-05-23-75a3b870-1\n"
    )
    assert parse_manifest(opkg) == {
        "base-files": "1528-r24106-10cc5fcd00",
        "kernel": "6.6.86~abc-r1",
        "libubox20230523": "2023-05-23-75a3b870-1",
    }
    apk = "busybox 1.36.1-r1\nca-bundle 20240203-r1\n\n"
    assert parse_manifest(apk) == {"busybox": "1.36.1-r1", "ca-bundle": "20240203-r1"}
    assert parse_manifest("") == {}


def test_parse_manifest_of_a_real_make_manifest(imagebuilder: IB) -> None:
    ib = imagebuilder("24.10.5", "x86/64")
    result = run_make(
        ib, manifest_command("generic", ["curl", "-ppp", "-ppp-mod-pppoe"]), 60, "manifest"
    )
    assert result.returncode == 0, result.stderr
    manifest = parse_manifest(result.stdout)
    assert len(manifest) == len(result.stdout.splitlines())
    assert "curl" in manifest and "ppp" not in manifest
    assert manifest["base-files"].startswith("1528-r")


# --- package selection errors -----------------------------------------------------------------

OPKG_MISSING = """\
Collected errors:
 * opkg_install_cmd: Cannot install package OPKG-MISSING.
"""
OPKG_CONFLICT = """\
Collected errors:
 * check_conflicts_for: The following packages conflict with OPKG-CONFLICT-1:
 * check_conflicts_for:         OPKG-CONFLICT-2 *
 * opkg_install_cmd: Cannot install package OPKG-CONFLICT-1.
"""
OPKG_CONFLICT_TWO = (  # opkg-lede prints several conflicting packages on one line
    "Collected errors:\n"
    " * check_conflicts_for: The following packages conflict with wpad:\n"
    " * check_conflicts_for: \twpad-basic-mbedtls * check_conflicts_for: \twpad-mbedtls * \n"
    " * opkg_install_cmd: Cannot install package wpad.\n"
)
OPKG_CLASH = """\
Collected errors:
 * check_data_file_clashes: Package OPKG-CONFLICT-3 wants to install file /some/file
	But that file is already provided by package  * OPKG-CONFLICT-4
 * opkg_install_cmd: Cannot install package OPKG-CONFLICT-4.
"""
OPKG_UNSATISFIED = """\
Collected errors:
 * satisfy_dependencies_for: Cannot satisfy the following dependencies for luci-app-foo:
 * 	luci-lib-bar (>= 1:2.0)
 * 	libbaz
 * opkg_install_cmd: Cannot install package luci-app-foo.
"""
OPKG_UNRESOLVED = """\
Collected errors:
 * pkg_hash_check_unresolved: cannot find dependency libmissing (>= 2) for broken
 * pkg_hash_fetch_best_installation_candidate: Packages for broken found, but incompatible \
with the architectures configured
 * opkg_install_cmd: Cannot install package broken.
"""
APK_MISSING = """\
ERROR: unable to select packages:
  APK-MISSING (no such package):
    required by: world[APK-MISSING]
"""
APK_CONFLICT = """\
ERROR: unable to select packages:
  APK-CONFLICT-1:
    conflicts: APK-CONFLICT-2[nftables=1.1.6-r1]
    satisfies: world[nftables-json]
               blah[nftables]
  APK-CONFLICT-2:
    conflicts: APK-CONFLICT-1[nftables=1.1.6-r1]
    satisfies: world[nftables-nojson]
"""
APK_CONFLICT_VERSIONED = """\
ERROR: unable to select packages:
  dnsmasq-full-2.90-r4:
    conflicts: dnsmasq-2.90-r4[dnsmasq]
               odhcpd-2024.05.08~a2988231-r1[cmd:odhcpd]
    satisfies: world[dnsmasq-full]
  dnsmasq-2.90-r4:
    breaks: world[!dnsmasq]
"""
APK_OVERWRITE = """\
(1/40) Installing libfoo (1.0-r1)
ERROR: libfoo-1.0-r1: trying to overwrite usr/lib/libx.so.1 owned by libbar-2.3.1-r0.
1 error; 12 MiB in 40 packages
"""


@pytest.mark.parametrize(
    ("stderr", "missing", "conflicts"),
    [
        (OPKG_MISSING, ["OPKG-MISSING"], []),
        (OPKG_CONFLICT, [], ["OPKG-CONFLICT-1", "OPKG-CONFLICT-2"]),
        (OPKG_CONFLICT_TWO, [], ["wpad", "wpad-basic-mbedtls", "wpad-mbedtls"]),
        (OPKG_CLASH, [], ["OPKG-CONFLICT-3", "OPKG-CONFLICT-4"]),
        (OPKG_UNSATISFIED, ["libbaz", "luci-lib-bar"], []),
        (OPKG_UNRESOLVED, ["libmissing"], []),
        (APK_MISSING, ["APK-MISSING"], []),
        (APK_CONFLICT, [], ["APK-CONFLICT-1", "APK-CONFLICT-2"]),
        (APK_CONFLICT_VERSIONED, [], ["dnsmasq", "dnsmasq-full", "odhcpd"]),
        (APK_OVERWRITE, [], ["libbar", "libfoo"]),
        (OPKG_MISSING + OPKG_CONFLICT, ["OPKG-MISSING"], ["OPKG-CONFLICT-1", "OPKG-CONFLICT-2"]),
    ],
    ids=[
        "opkg-missing",
        "opkg-conflict",
        "opkg-conflict-two",
        "opkg-clash",
        "opkg-unsatisfied",
        "opkg-unresolved",
        "apk-missing",
        "apk-conflict",
        "apk-conflict-versioned",
        "apk-overwrite",
        "opkg-both",
    ],
)
def test_package_selection_errors(stderr: str, missing: list[str], conflicts: list[str]) -> None:
    error = package_selection_error(stderr, "validate_manifest", stdout="out")
    assert isinstance(error, PackageSelectionError)
    assert (error.missing, error.conflicts) == (missing, conflicts)
    assert (error.stage, error.stdout, error.stderr) == ("validate_manifest", "out", stderr)


def test_package_selection_error_detail() -> None:
    error = package_selection_error(OPKG_MISSING + OPKG_CONFLICT, "manifest")
    assert error is not None
    assert error.detail == (
        "Impossible package selection: missing (OPKG-MISSING) "
        "conflicts (OPKG-CONFLICT-1, OPKG-CONFLICT-2)"
    )


@pytest.mark.parametrize(
    "stderr",
    [
        "",
        'Profile "x" does not exist!\n',
        "make: *** [Makefile:74: manifest] Error 1\n",
        "Downloading https://example.org/Packages.gz\nwget: server returned error: HTTP/1.1 404\n",
    ],
)
def test_other_failures_are_not_package_errors(stderr: str) -> None:
    assert package_selection_error(stderr, "manifest") is None


def test_package_errors_of_a_real_imagebuilder(imagebuilder: IB) -> None:
    ib = imagebuilder("24.10.5", "x86/64")
    missing = run_make(ib, manifest_command("generic", ["luci", "no-such-package"]), 60, "manifest")
    assert missing.returncode != 0
    error = package_selection_error(missing.stderr, "manifest")
    assert error is not None and (error.missing, error.conflicts) == (["no-such-package"], [])
    conflict = run_make(ib, manifest_command("generic", ["dnsmasq-full"]), 60, "manifest")
    error = package_selection_error(conflict.stderr, "manifest")
    assert error is not None and (error.missing, error.conflicts) == (
        [],
        ["dnsmasq", "dnsmasq-full"],
    )


def test_image_too_big() -> None:
    assert image_too_big("    WARNING: Image file /x/y.bin is too big: 9000000 > 8000000\n")
    assert image_too_big(
        "error: ext4_allocate_best_fit_partial: failed to allocate 12 blocks, out of space?"
    )
    assert not image_too_big("Building images...\n")


# --- PACKAGES -----------------------------------------------------------------------------------


def test_diff_packages_order() -> None:
    assert diff_packages(
        ["test1", "zzz", "test2", "aaa"],
        ["base-files", "busybox", "test1", "dropbear"],
        ["kmod-usb2", "test2"],
    ) == ["-base-files", "-busybox", "-dropbear", "-kmod-usb2", "test1", "zzz", "test2", "aaa"]


def test_diff_packages_device_removals() -> None:
    # a device "-x" entry stays "-x" (upstream's "--" → "-"), unless x is requested
    assert diff_packages(
        ["luci"], ["wpad-basic-mbedtls", "dropbear"], ["-wpad-basic-mbedtls", "wpad"]
    ) == [
        "-dropbear",
        "-wpad",
        "-wpad-basic-mbedtls",
        "luci",
    ]
    assert diff_packages(
        ["wpad-basic-mbedtls"], ["wpad-basic-mbedtls"], ["-wpad-basic-mbedtls"]
    ) == ["wpad-basic-mbedtls"]
    assert diff_packages([], [], []) == []
    # an explicit removal in the request is not repeated
    assert diff_packages(["a", "-b"], ["a", "b"], []) == ["a", "-b"]
