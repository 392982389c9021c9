"""End to end: the real ``firmforge client`` process against a real ``firmforge serve`` on the
synthetic mirror — from a device root to a verified image, a failing build, a corrupted
download, an upstream-like server, flashing over a fake ssh, and Ctrl-C during a build."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.client_cli.conftest import (
    FIRMFORGE,
    ROOTS,
    FakeSsh,
    assert_clean,
    run_client,
    write_device_root,
)
from tests.conftest import MirrorFixture
from tests.server_fixtures import RunningServer, firmforge_server, mirror_over_http

pytestmark = pytest.mark.slow

ATH79 = "ath79/generic"
C7 = {"target": ATH79, "profile": "tplink_archer-c7-v5", "board": "tplink,archer-c7-v5"}
FAST = ("--poll-interval", "0.2")


@pytest.fixture(scope="module")
def mirror_url(mirror: MirrorFixture) -> Iterator[str]:
    with mirror_over_http(mirror.root) as url:
        yield url


@pytest.fixture(scope="module")
def server(mirror: MirrorFixture, mirror_url: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with firmforge_server(tmp_path_factory.mktemp("client-serve"), mirror_url,
                          mirror.public_key, workers=1) as running:
        yield running


@pytest.fixture(scope="module")
def c7_2410_4(mirror: MirrorFixture, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Archer C7 on 24.10.4 whose user added tcpdump."""
    return write_device_root(mirror, tmp_path_factory.mktemp("c7") / "root",
                             version="24.10.4", extra=("tcpdump",), **C7)


def client(server: RunningServer, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = run_client(*args, "--server", server.url, **kwargs)
    assert_clean(result)
    return result


def as_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return json.loads(result.stdout)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- check ----------------------------------------------------------------------------------------


def test_check_offers_the_newer_release_with_its_channel(server: RunningServer,
                                                         c7_2410_4: Path) -> None:
    result = client(server, "check", "--root", str(c7_2410_4), "--json")
    assert result.returncode == 10, result.stderr
    answer = as_json(result)
    assert answer["status"] == "upgrade_available" and answer["source"] == "upgrade-check"
    assert answer["upgrade"]["version"] == "24.10.5"
    assert answer["upgrade"]["channel"] == "unknown"
    assert answer["device"]["packages"]["tcpdump"] == "4.99.5-r1"
    assert "libubox" not in answer["device"]["packages"]  # a dependency, not chosen
    text = client(server, "check", "--root", str(c7_2410_4))
    assert text.returncode == 10
    assert "Newer release: 24.10.5 (branch 24.10), channel unknown" in text.stdout


def test_check_from_2305_offers_the_new_branch_with_renames(server: RunningServer) -> None:
    result = client(server, "--json", "check", "--root", str(ROOTS / "opkg-23.05"))
    assert result.returncode == 10, result.stderr
    stable = as_json(result)["stable"]
    assert stable["version"] == "24.10.5"
    assert {"source": "auc", "target": "owut"} in stable["package_changes"]


def test_check_package_updates_and_up_to_date(mirror: MirrorFixture, server: RunningServer,
                                              tmp_path: Path) -> None:
    older = write_device_root(mirror, tmp_path / "older", version="24.10.5",
                              older={"dnsmasq": "2.90-r1"}, **C7)
    result = client(server, "check", "--root", str(older), "--json")
    assert result.returncode == 11, result.stderr
    assert as_json(result)["package_updates"] == [
        {"name": "dnsmasq", "installed": "2.90-r1", "available": "2.90-r2"}]
    current = write_device_root(mirror, tmp_path / "current", version="24.10.5", **C7)
    result = client(server, "check", "--root", str(current))
    assert result.returncode == 0, result.stderr
    assert "Up to date." in result.stdout


def test_a_release_the_server_does_not_know_is_refused_with_exit_3(
    server: RunningServer
) -> None:
    result = client(server, "check", "--root", str(ROOTS / "apk-25.12"))
    assert result.returncode == 3, result.stderr
    assert "the server refused the request (400)" in result.stderr
    assert "25.12.0" in result.stderr


# --- build, download, info ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(server: RunningServer, c7_2410_4: Path) -> dict[str, Any]:
    result = client(server, "build", "--root", str(c7_2410_4), "--version", "24.10.5",
                    "--add", "iperf3", "--remove", "ppp-mod-pppoe", "--json", *FAST)
    assert result.returncode == 0, result.stderr
    return as_json(result)


def test_build_sends_the_devices_packages_and_shows_progress(
    built: dict[str, Any], server: RunningServer, c7_2410_4: Path
) -> None:
    request = built["request"]
    assert request["version"] == "24.10.5" and request["profile"] == "tplink,archer-c7-v5"
    assert request["client"].startswith("firmforge-client/")
    assert request["diff_packages"] is True
    assert {"tcpdump", "iperf3", "dnsmasq"} <= set(request["packages"])
    assert "ppp-mod-pppoe" not in request["packages"]
    assert "libustream-mbedtls" in request["packages"]  # ABI suffix stripped
    assert len(built["request_hash"]) == 64
    assert {i["type"] for i in built["images"]} >= {"sysupgrade"}
    # a repeat is a cache hit; plain progress lines go to stderr, the result to stdout
    again = client(server, "build", "--root", str(c7_2410_4), "--version", "24.10.5",
                   "--add", "iperf3", "--remove", "ppp-mod-pppoe", *FAST)
    assert again.returncode == 0
    assert f"Build {built['request_hash']} done: 24.10.5" in again.stdout
    assert "requesting 24.10.5 for tplink,archer-c7-v5" in again.stderr
    assert f"firmforge client download {built['request_hash']}" in again.stdout


def test_download_verifies_the_image_and_its_signature(
    built: dict[str, Any], server: RunningServer, tmp_path: Path
) -> None:
    result = client(server, "download", built["request_hash"], "--out", str(tmp_path),
                    "--json")
    assert result.returncode == 0, result.stderr
    done = as_json(result)
    image = next(i for i in built["images"] if i["type"] == "sysupgrade")
    path = Path(done["path"])
    assert path == tmp_path / image["name"] and sha256(path) == image["sha256"]
    assert done["signature"] == "verified"
    key = httpx.get(f"{server.url}/api/v1/key")
    assert done["key_fingerprint"] == key.headers["X-Key-Fingerprint"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [image["name"]]
    # again: nothing to fetch, still verified
    text = client(server, "download", built["request_hash"], "--out", str(tmp_path))
    assert text.returncode == 0
    assert "ok, signature verified" in text.stdout and "already downloaded" in text.stderr


def test_an_interrupted_download_resumes(built: dict[str, Any], server: RunningServer,
                                         tmp_path: Path) -> None:
    image = next(i for i in built["images"] if i["type"] == "factory")
    whole = httpx.get(f"{server.url}/store/{built['bin_dir']}/{image['name']}").content
    (tmp_path / f"{image['name']}.part").write_bytes(whole[:4096])
    result = client(server, "download", built["request_hash"], "--out", str(tmp_path),
                    "--image", "factory")
    assert result.returncode == 0, result.stderr
    assert "resuming at byte 4096" in result.stderr
    assert (tmp_path / image["name"]).read_bytes() == whole


def test_info_summarises_the_build(built: dict[str, Any], server: RunningServer) -> None:
    result = client(server, "info", built["request_hash"], "--json")
    assert result.returncode == 0, result.stderr
    info = as_json(result)
    assert info["source"] == "info" and info["status"] == "done"
    assert info["signature"]["verified"] is True
    text = client(server, "info", built["request_hash"])
    assert f"Build {built['request_hash']}: done" in text.stdout
    assert "ImageBuilder: openwrt-imagebuilder-24.10.5-ath79-generic" in text.stdout
    assert "signature by key" in text.stdout and "verified" in text.stdout
    unknown = client(server, "info", "0" * 64)
    assert unknown.returncode == 3
    assert "knows no build" in unknown.stderr


def test_upgrade_dry_run_prints_the_device_commands(
    built: dict[str, Any], server: RunningServer, c7_2410_4: Path, tmp_path: Path
) -> None:
    result = client(server, "upgrade", "--root", str(c7_2410_4), "--out", str(tmp_path),
                    "--add", "iperf3", "--remove", "ppp-mod-pppoe", "--json", *FAST)
    assert result.returncode == 0, result.stderr
    report = as_json(result)
    assert report["version"] == "24.10.5" and report["ran"] is False
    assert report["build"]["request_hash"] == built["request_hash"]  # the same build
    path = Path(report["download"]["path"])
    assert path.parent == tmp_path and report["download"]["signature"] == "verified"
    assert report["commands"] == [f"sysupgrade -T {path}", f"sysupgrade {path}"]


# --- failures -------------------------------------------------------------------------------------


def test_a_failed_build_shows_the_stage_and_detail(mirror: MirrorFixture,
                                                   server: RunningServer,
                                                   tmp_path: Path) -> None:
    small = write_device_root(mirror, tmp_path / "wr842", version="24.10.5", target=ATH79,
                              profile="tplink_tl-wr842n-v3", board="tplink,tl-wr842n-v3")
    args = ["build", "--root", str(small), *FAST]
    for name in ("python3-light", "luci", "luci-app-statistics", "tcpdump"):
        args += ["--add", name]
    result = client(server, *args, "--json")
    assert result.returncode == 5, result.stderr
    failure = as_json(result)
    assert failure["error"] == "build_failed" and failure["failed_stage"] == "building_image"
    assert "Selected packages exceed device storage" in failure["detail"]
    text = client(server, *args)
    assert text.returncode == 5
    assert ("error: the build failed at stage building_image: Error: Selected packages exceed "
            "device storage") in text.stderr
    assert "is too big" in text.stderr  # the tail of the ImageBuilder's output


def test_a_corrupted_download_is_detected_and_deleted(
    mirror: MirrorFixture, server: RunningServer, tmp_path: Path
) -> None:
    root = write_device_root(mirror, tmp_path / "ar150", version="24.10.5", target=ATH79,
                             profile="glinet_gl-ar150", board="glinet,gl-ar150")
    built = as_json(client(server, "build", "--root", str(root), "--json", *FAST))
    image = next(i for i in built["images"] if i["type"] == "sysupgrade")
    stored = server.data_dir / "store" / built["bin_dir"] / image["name"]
    tampered = bytearray(stored.read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    stored.unlink()  # a new file: nothing else shares the inode
    stored.write_bytes(bytes(tampered))
    out = tmp_path / "out"
    result = client(server, "download", built["request_hash"], "--out", str(out))
    assert result.returncode == 6, result.stderr
    assert f"{image['name']} is corrupted" in result.stderr
    assert "the file was deleted" in result.stderr
    assert list(out.iterdir()) == []


# --- an upstream-compatible server ----------------------------------------------------------------


def test_upstream_server_without_firmforge_routes(
    built: dict[str, Any], server: RunningServer, c7_2410_4: Path, tmp_path: Path,
    upstream_view: Any,
) -> None:
    upstream = upstream_view(server.url)
    check = run_client("check", "--root", str(c7_2410_4), "--server", upstream, "--json")
    assert_clean(check)
    assert check.returncode == 10, check.stderr
    answer = json.loads(check.stdout)
    assert answer["source"] == "overview" and answer["upgrade"]["version"] == "24.10.5"
    download = run_client("download", built["request_hash"], "--out", str(tmp_path),
                          "--server", upstream)
    assert_clean(download)
    assert download.returncode == 0, download.stderr
    assert "signature verification was skipped" in download.stderr
    assert "signature NOT verified" in download.stdout
    info = run_client("info", built["request_hash"], "--server", upstream, "--json")
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout)
    assert summary["source"] == "build" and summary["status"] == "done"


# --- flashing over ssh ----------------------------------------------------------------------------


def test_upgrade_over_ssh_copies_tests_and_flashes(
    mirror: MirrorFixture, server: RunningServer, fake_ssh: FakeSsh, tmp_path: Path
) -> None:
    shutil.rmtree(fake_ssh.root)
    write_device_root(mirror, fake_ssh.root, version="24.10.4", extra=("tcpdump",), **C7)
    out = tmp_path / "images"
    result = client(server, "upgrade", "--ssh", "root@router", "--out", str(out), "--yes",
                    *FAST, env=fake_ssh.env)
    assert result.returncode == 0, result.stderr
    image = next(out.iterdir())
    remote = [call[2] for call in fake_ssh.calls() if not call[2].startswith(("cat --",
                                                                               "test -e"))]
    device_path = f"/tmp/{image.name}"
    assert remote == [f"cat > {device_path}", f"sha256sum {device_path}",
                      f"sysupgrade -T {device_path}", f"sysupgrade {device_path}"]
    assert (fake_ssh.root / device_path.lstrip("/")).read_bytes() == image.read_bytes()
    assert "sysupgrade started on root@router" in result.stdout


def test_upgrade_refuses_to_flash_without_yes_when_not_interactive(
    mirror: MirrorFixture, server: RunningServer, fake_ssh: FakeSsh, tmp_path: Path
) -> None:
    shutil.rmtree(fake_ssh.root)
    write_device_root(mirror, fake_ssh.root, version="24.10.4", extra=("tcpdump",), **C7)
    result = client(server, "upgrade", "--ssh", "root@router", "--out", str(tmp_path),
                    *FAST, env=fake_ssh.env)
    assert result.returncode == 2, result.stderr
    assert "without --yes" in result.stderr
    assert not any(call[2].startswith("sysupgrade") for call in fake_ssh.calls())


# --- a build that is not done yet -----------------------------------------------------------------


def test_ctrl_c_leaves_the_build_running_and_says_how_to_resume(
    mirror: MirrorFixture, mirror_url: str, c7_2410_4: Path, tmp_path: Path
) -> None:
    # no workers: the build stays queued, so the interrupt always lands while waiting
    with firmforge_server(tmp_path / "serve", mirror_url, mirror.public_key,
                          workers=0) as idle:
        process = subprocess.Popen(
            [*FIRMFORGE, "client", "build", "--root", str(c7_2410_4), "--server", idle.url,
             *FAST], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "COLUMNS": "200"})
        assert process.stderr is not None
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "queued" in line:
                break
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=30)
        stderr = "".join(lines) + rest
        assert process.returncode == 130, stderr
        assert "Traceback" not in stderr
        request_hash = lines[-1].split(":")[0]
        assert "queued, position" in lines[-1]
        full_hash = next(word for word in stderr.replace("'", " ").split()
                         if len(word) == 64 and word.startswith(request_hash))
        assert f"firmforge client download {full_hash}" in stderr
        info = run_client("info", full_hash, "--server", idle.url)
        assert info.returncode == 0, info.stderr
        assert f"Build {full_hash}: queued" in info.stdout
        waiting = run_client("download", full_hash, "--server", idle.url, "--timeout", "1",
                             *FAST, "--out", str(tmp_path))
        assert waiting.returncode == 4, waiting.stderr
        assert "still not done after 1 s" in waiting.stderr
