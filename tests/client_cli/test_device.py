"""Device facts from fixture roots of each generation, and clear errors for broken ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from firmforge.cli import app
from firmforge.client import DeviceFacts, LocalReader, read_device
from firmforge.client._device import parse_apk, parse_opkg_status, parse_release
from firmforge.client._errors import DeviceError
from tests.client_cli.conftest import ROOTS, assert_clean, copy_root, run_client


def facts(name: str) -> DeviceFacts:
    return read_device(LocalReader(ROOTS / name))


def test_opkg_2305_user_flag_counts_and_dependencies_do_not() -> None:
    device = facts("opkg-23.05")
    assert (device.distro, device.version, device.target) == ("openwrt", "23.05.5",
                                                               "ath79/generic")
    assert device.board_name == device.profile == "tplink,archer-c7-v5"
    assert device.revision == "r24106-10cc5fcd00"
    assert device.package_manager == "opkg"
    # user-flagged (also "user,hold"), ABI suffix stripped; the Auto-Installed libubox and
    # the removed ("deinstall … not-installed") tcpdump are not the user's packages
    assert device.packages == {
        "auc": "0.3.2-1", "base-files": "1528-1", "dnsmasq": "2.90-1", "libc": "1.2.4-4",
        "libustream-mbedtls": "2024.02.10~d8c3d2ee-1", "luci": "25.051.13443~aa0c1ec-1",
    }


def test_opkg_2410_without_user_flag_uses_auto_installed() -> None:
    device = facts("opkg-24.10")
    assert device.version == "24.10.4"
    assert device.filesystem == "squashfs"  # /rom in /proc/mounts
    assert device.packages == {
        "base-files": "1528-r1", "dnsmasq": "2.90-r1", "libc": "1.2.5-r4",
        "libustream-mbedtls": "2024.02.10~d8c3d2ee-r1", "luci": "25.051.13443~aa0c1ec-r1",
        "tcpdump": "4.99.5-r1",
    }
    assert "libubox" not in device.packages and "libpcap" not in device.packages


def test_apk_world_with_suffixes_and_versions_from_the_installed_db() -> None:
    device = facts("apk-25.12")
    assert device.package_manager == "apk"
    assert device.target == "mediatek/filogic" and device.board_name == "glinet,gl-mt6000"
    assert device.packages == {
        "base-files": "1650~a1b2c3d4-r1", "busybox": "1.37.0-r2", "dnsmasq": "2.90-r4",
        # world says libustream-mbedtls, the db holds libustream-mbedtls20250102
        "libustream-mbedtls": "2025.01.02~a0a9aac3-r1",
        "luci": "25.300.12345~abcdef0-r1", "owut": "2025.06.01~1a2b3c4d-r1",
        "tcpdump": "4.99.5-r1",
    }
    assert device.constraints == {"busybox": "><1.38", "owut": "@custom",
                                  "tcpdump": "=4.99.5-r1"}
    assert "dnsmasq-full" not in device.packages  # "!dnsmasq-full" forbids it
    assert "libpcap" not in device.packages


def test_apk_world_entry_that_is_not_installed_is_a_warning() -> None:
    packages, _, warnings = parse_apk("luci\nghost~1.0\n", "P:luci\nV:1-r1\n")
    assert packages == {"luci": "1-r1"}
    assert warnings == ["/etc/apk/world names ghost, which is not installed; left out"]


def test_x86_is_the_generic_profile_and_efi_is_detected(tmp_path: Path) -> None:
    root = copy_root("opkg-24.10", tmp_path / "x86")
    (root / "etc/board.json").write_text(json.dumps(
        {"model": {"id": "qemu-standard-pc-i440fx-piix-1996", "name": "QEMU"}}))
    release = root / "etc/openwrt_release"
    release.write_text(release.read_text().replace("ath79/generic", "x86/64"))
    (root / "sys/firmware/efi").mkdir(parents=True)
    (root / "proc/mounts").write_text("/dev/root / ext4 rw,noatime 0 0\n")
    device = read_device(LocalReader(root))
    assert device.profile == "generic" and device.board_name.startswith("qemu")
    assert device.efi and device.filesystem == "ext4"


def test_release_file_accepts_shell_quoting() -> None:
    assert parse_release("A='x y'\nB=\"z\"\nC=plain\n# comment\n\n") == {
        "A": "x y", "B": "z", "C": "plain"}


MALFORMED = [
    ("etc/board.json", "{not json", "/etc/board.json: not valid JSON"),
    ("etc/board.json", '{"model": {}}', "/etc/board.json: no model.id"),
    ("etc/openwrt_release", "DISTRIB_ID='OpenWrt\n", "/etc/openwrt_release line 1"),
    ("etc/openwrt_release", "DISTRIB_ID=OpenWrt\nDISTRIB_RELEASE=24.10.4\n",
     "DISTRIB_TARGET is missing"),
    ("etc/openwrt_release", "DISTRIB_ID=OpenWrt\nDISTRIB_RELEASE=24.10.4\n"
     "DISTRIB_TARGET=ath79\n", "is not target/subtarget"),
    ("usr/lib/opkg/status", "Package: luci\nthis is not a field\n",
     "/usr/lib/opkg/status line 2: expected 'Field: value'"),
    ("usr/lib/opkg/status", "Package: dep\nVersion: 1\nStatus: install ok installed\n"
     "Auto-Installed: yes\n", "no installed packages chosen by the user"),
    ("usr/lib/opkg/status", b"\xff\xfe\x00binary", "not a text file"),
]


@pytest.mark.parametrize(("path", "content", "message"), MALFORMED)
def test_malformed_files_are_clear_errors(tmp_path: Path, path: str, content: str | bytes,
                                          message: str) -> None:
    root = copy_root("opkg-24.10", tmp_path / "root")
    target = root / path
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    with pytest.raises(DeviceError, match=re.escape(message)):
        read_device(LocalReader(root))


def test_malformed_apk_world_is_a_clear_error() -> None:
    with pytest.raises(DeviceError, match=r"line 2: not a package constraint"):
        parse_apk("luci\n=bad\n", "P:luci\nV:1\n")
    with pytest.raises(DeviceError, match="no installed packages listed"):
        parse_apk("\n", "P:luci\nV:1\n")


def test_status_parser_skips_bodies_and_broken_stanzas() -> None:
    text = ("Package: a\nVersion: 1\nStatus: install ok installed\nConffiles:\n /etc/a 00\n\n"
            "Package: b\nStatus: install ok installed\n\n"  # no version: skipped, as rpcd
            "Package: c\nVersion: 2\nStatus: install ok\n")  # malformed status: skipped
    assert parse_opkg_status(text) == {"a": "1"}


def test_missing_files_name_what_is_missing(tmp_path: Path) -> None:
    root = copy_root("opkg-24.10", tmp_path / "root")
    (root / "usr/lib/opkg/status").unlink()
    with pytest.raises(DeviceError, match=r"neither /usr/lib/opkg/status .* nor /etc/apk/world"):
        read_device(LocalReader(root))
    with pytest.raises(DeviceError, match=r"/etc/board\.json is missing"):
        read_device(LocalReader(tmp_path))


def test_cli_reports_a_malformed_root_with_exit_code_1(tmp_path: Path) -> None:
    root = copy_root("opkg-24.10", tmp_path / "root")
    (root / "usr/lib/opkg/status").write_text("garbage without a colon\n")
    result = run_client("check", "--root", str(root), "--server", "http://127.0.0.1:9")
    assert result.returncode == 1, result.stderr
    assert_clean(result)
    assert "error: /usr/lib/opkg/status line 1" in result.stderr


def test_cli_json_error_document(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["client", "--json", "build", "--root", str(tmp_path),
                                      "--server", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["error"] == "device" and document["exit_code"] == 1
    assert "/etc/board.json is missing" in document["detail"]


@pytest.mark.parametrize("args", [
    ["check", "--root", "/nonexistent/dir"],
    ["check", "--root", ".", "--ssh", "root@router"],
    ["download", "not-a-hash"],
    ["info", "1234"],
    ["check", "--server", "ftp://example.org", "--root", str(ROOTS / "opkg-24.10")],
    ["download", "a" * 64, "--key", "/nonexistent.pub"],
    ["build", "--root", str(ROOTS / "opkg-24.10"), "--defaults", "/nonexistent/script"],
])
def test_usage_errors_exit_2_without_a_traceback(args: list[str]) -> None:
    result = CliRunner().invoke(app, ["client", *args, "--server", "http://127.0.0.1:9"]
                                if "--server" not in args else ["client", *args])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "error:" in result.output


def test_unreachable_server_exits_4(tmp_path: Path) -> None:
    result = run_client("check", "--root", str(ROOTS / "opkg-24.10"),
                        "--server", "http://127.0.0.1:9")
    assert result.returncode == 4, result.stderr
    assert_clean(result)
    assert "cannot reach http://127.0.0.1:9" in result.stderr


def test_help_lists_the_exit_codes() -> None:
    for command in ([], ["check"], ["download"], ["upgrade"]):
        result = CliRunner().invoke(app, ["client", *command, "--help"],
                                    env={"COLUMNS": "200"})
        assert result.exit_code == 0
        for code in ("0 ok", "1 device facts", "2 usage error", "3 the server refused",
                     "5 the build failed", "6 download failed", "10 check", "130 interrupted"):
            assert code in result.output, (command, code)
