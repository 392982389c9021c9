"""``SshReader`` against a fake ``ssh`` first on PATH (a stand-in for the network): the same
device facts as a local root, argument lists only, remote paths quoted for the device shell."""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

import pytest

from firmforge.client import LocalReader, SshReader, read_device
from firmforge.client._errors import DeviceCommandError, DeviceError
from firmforge.client._sysupgrade import run_plan, sysupgrade_plan
from tests.client_cli.conftest import ROOTS, FakeSsh, assert_clean, run_client


@pytest.fixture
def on_path(fake_ssh: FakeSsh, monkeypatch: pytest.MonkeyPatch) -> FakeSsh:
    for key, value in fake_ssh.env.items():
        monkeypatch.setenv(key, value)
    return fake_ssh


def test_ssh_reads_the_same_facts_as_the_local_root(on_path: FakeSsh) -> None:
    remote = read_device(SshReader("root@router"))
    assert remote == read_device(LocalReader(ROOTS / "opkg-24.10"))
    calls = on_path.calls()
    # every call: ssh -- <target> <one remote command line>
    assert all(call[:2] == ["--", "root@router"] and len(call) == 3 for call in calls)
    remote_lines = [call[2] for call in calls]
    assert "cat -- /etc/board.json" in remote_lines
    assert "cat -- /usr/lib/opkg/status" in remote_lines
    assert "test -e /sys/firmware/efi" in remote_lines


def test_remote_paths_are_quoted_for_the_device_shell(on_path: FakeSsh) -> None:
    odd = "/tmp/it's a $(reboot) file;rm -rf"
    (on_path.root / odd.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
    (on_path.root / odd.lstrip("/")).write_bytes(b"payload")
    assert SshReader("root@router").read(odd) == b"payload"
    line = on_path.calls()[-1][2]
    assert line == f"cat -- {shlex.quote(odd)}"
    assert shlex.split(line) == ["cat", "--", odd]  # the device's shell sees one word


def test_missing_file_is_none_and_a_failed_connection_an_error(on_path: FakeSsh) -> None:
    assert SshReader("root@router").read("/etc/nothing") is None
    with pytest.raises(DeviceError, match=r"ssh to root@elsewhere failed.*Could not resolve"):
        SshReader("root@elsewhere").read("/etc/board.json")


@pytest.mark.parametrize("target", ["-oProxyCommand=touch /tmp/x", "", "root@a b"])
def test_option_like_targets_are_refused(target: str) -> None:
    with pytest.raises(DeviceError, match="not an ssh destination"):
        SshReader(target)


def test_missing_ssh_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DeviceError, match="'ssh' was not found on PATH"):
        SshReader("root@router").read("/etc/board.json")


def test_sysupgrade_plan_over_ssh_copies_checks_tests_then_flashes(
    on_path: FakeSsh, tmp_path: Path
) -> None:
    image = tmp_path / "openwrt-sysupgrade.bin"
    image.write_bytes(b"firmware" * 100)
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    reader = SshReader("root@router")
    steps = sysupgrade_plan(reader, image, digest, keep=False)
    lines = [step.line(reader) for step in steps]
    assert lines == [
        f"ssh -- root@router 'cat > /tmp/openwrt-sysupgrade.bin' < {image}",
        "ssh -- root@router 'sha256sum /tmp/openwrt-sysupgrade.bin'",
        "ssh -- root@router 'sysupgrade -T /tmp/openwrt-sysupgrade.bin'",
        "ssh -- root@router 'sysupgrade -n /tmp/openwrt-sysupgrade.bin'",
    ]
    done = run_plan(reader, steps)
    assert (on_path.root / "tmp/openwrt-sysupgrade.bin").read_bytes() == image.read_bytes()
    assert done[-1]["note"] == "the connection closed: the device is rebooting"
    remote = [call[2] for call in on_path.calls()]
    assert remote == ["cat > /tmp/openwrt-sysupgrade.bin", "sha256sum /tmp/openwrt-sysupgrade.bin",
                      "sysupgrade -T /tmp/openwrt-sysupgrade.bin",
                      "sysupgrade -n /tmp/openwrt-sysupgrade.bin"]


def test_a_failed_image_test_stops_before_flashing(on_path: FakeSsh, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SSH_SYSUPGRADE_TEST_RC", "1")
    image = tmp_path / "image.bin"
    image.write_bytes(b"x")
    reader = SshReader("root@router")
    steps = sysupgrade_plan(reader, image, hashlib.sha256(b"x").hexdigest())
    with pytest.raises(DeviceCommandError, match=r"(?s)sysupgrade -T.*failed.*not supported"):
        run_plan(reader, steps)
    assert not any(call[2].startswith("sysupgrade /") for call in on_path.calls())


def test_cli_check_over_ssh_reads_the_remote_device(fake_ssh: FakeSsh) -> None:
    # the server is unreachable: the facts were read (exit 4, not 1) over the fake ssh
    result = run_client("check", "--ssh", "root@router", "--server", "http://127.0.0.1:9",
                        env=fake_ssh.env)
    assert result.returncode == 4, result.stderr
    assert_clean(result)
    assert ["--", "root@router", "cat -- /etc/openwrt_release"] in fake_ssh.calls()


def test_cli_ssh_failure_exits_1(fake_ssh: FakeSsh) -> None:
    result = run_client("--json", "check", "--ssh", "root@nowhere", env=fake_ssh.env)
    assert result.returncode == 1, result.stderr
    assert_clean(result)
    assert json.loads(result.stdout)["error"] == "device"
    assert "ssh to root@nowhere failed" in result.stderr
