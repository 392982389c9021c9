"""The synthetic ImageBuilder driven as a user drives the real one: ``make`` in its directory.

Every test unpacks a fresh IB from the session's generated mirror (``imagebuilder`` fixture),
with its feeds pointing at the mirror through ``file://`` URLs (one test uses HTTP).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firmforge import fwtool
from firmforge.usign import PublicKey
from tests.conftest import MirrorFixture
from tests.server_fixtures import mirror_over_http

IB = Callable[[str, str], Path]
VERSIONS = ("23.05.5", "24.10.5")
TARGETS = ("x86/64", "ath79/generic", "ramips/mt7621")
ARCHER = "tplink_archer-c7-v5"


def make(ib: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    result = subprocess.run(
        ["make", *args], cwd=ib, capture_output=True, text=True, env=env, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"make {args} failed:\n{result.stdout}\n{result.stderr}")
    return result


def targetinfo(ib: Path) -> dict:
    return json.loads((ib / ".targetinfo.json").read_text())


def bin_dir(ib: Path) -> Path:
    info = targetinfo(ib)
    return ib / "bin" / "targets" / info["board"] / info["subtarget"]


def profiles(directory: Path) -> dict:
    return json.loads((directory / "profiles.json").read_text())


def manifest_lines(stdout: str) -> dict[str, str]:
    rows = [line.split(" - ") for line in stdout.splitlines()]
    assert all(len(row) == 2 for row in rows), stdout
    return dict(rows)


def rootfs_of_x86(directory: Path) -> tarfile.TarFile:
    tarball = next(directory.glob("*-generic-rootfs.tar.gz"))
    return tarfile.open(fileobj=io.BytesIO(gzip.decompress(tarball.read_bytes())))


def squashfs_rootfs(image_file: Path) -> tarfile.TarFile:
    """The rootfs tar inside a sysupgrade image: header, kernel, xz payload, fwtool trailer."""
    data = fwtool.strip_chunks(image_file.read_bytes())
    magic, kernel_len, payload_len = struct.unpack_from(">8sII", data)
    assert magic == b"FFIB\x00img"
    payload = data[struct.calcsize(">8sIIII32s64s") + kernel_len :][:payload_len]
    return tarfile.open(fileobj=io.BytesIO(lzma.decompress(payload)))


# --- help, info -------------------------------------------------------------------------------


def test_help_is_the_default_target(imagebuilder: IB) -> None:
    ib = imagebuilder("24.10.5", "x86/64")
    result = make(ib)
    assert result.stdout.startswith("Available Commands:\n")
    for word in (
        "info:",
        "image:",
        "manifest:",
        "package_whatdepends",
        "PROFILE=",
        "PACKAGES=",
        "FILES=",
        "BIN_DIR=",
        "EXTRA_IMAGE_NAME=",
        "DISABLED_SERVICES=",
        "ROOTFS_PARTSIZE=",
        "ADD_LOCAL_KEY=1",
        "STRIP_ABI=1",
    ):
        assert word in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_info_layout_is_exact(imagebuilder: IB, version: str, target: str) -> None:
    ib = imagebuilder(version, target)
    info = targetinfo(ib)
    expected = [
        f'Current Target: "{target}"',
        f'Current Architecture: "{info["arch"]}"',
        f'Current Revision: "{info["version_code"]}"',
        "Default Packages: " + " ".join(info["default_packages"]),
        "Available Profiles:",
        "",
    ]
    for device in info["devices"]:
        expected.append(f"{device['id']}:")
        if device["title"]:
            expected.append(f"    {device['title']}")
        expected.append("    Packages: " + " ".join(device["packages"]))
        expected.append(f"    hasImageMetadata: {int(device['has_image_metadata'])}")
        if device["supported_devices"]:
            expected.append("    SupportedDevices: " + " ".join(device["supported_devices"]))
    result = make(ib, "info")
    assert result.stdout == "\n".join(expected) + "\n"
    assert re.search(r'Current Revision: "(r.+)"', result.stdout)
    # what ASU's regex reads per profile: id line, name line, Packages line
    first = info["devices"][0]
    assert re.search(rf"{re.escape(first['id'])}:\n    .+\n    Packages: (.*?)\n", result.stdout)


def test_info_pins_known_blocks(imagebuilder: IB) -> None:
    ath79 = make(imagebuilder("23.05.5", "ath79/generic"), "info").stdout
    assert (
        "tplink_archer-c7-v5:\n"
        "    TP-Link Archer C7 v5\n"
        "    Packages: kmod-usb2 kmod-usb-ledtrig-usbport kmod-ath10k-ct "
        "ath10k-firmware-qca988x-ct\n"
        "    hasImageMetadata: 1\n"
        "    SupportedDevices: tplink,archer-c7-v5 archer-c7-v5\n"
    ) in ath79
    assert "Available Profiles:\n\n8dev_carambola2:\n" in ath79
    x86 = make(imagebuilder("24.10.5", "x86/64"), "info").stdout
    assert x86.endswith("generic:\n    Generic x86/64\n    Packages: \n    hasImageMetadata: 0\n")
    assert 'Current Architecture: "x86_64"' in x86


# --- manifest and package selection ------------------------------------------------------------


def test_manifest_is_sorted_name_version_only(imagebuilder: IB) -> None:
    ib = imagebuilder("24.10.5", "x86/64")
    result = make(ib, "manifest")
    packages = manifest_lines(result.stdout)
    names = list(packages)
    assert names == sorted(names)
    for name in ("base-files", "busybox", "kernel", "libc", "dnsmasq", "opkg"):
        assert name in packages
    abi_names = [n for n in names if re.fullmatch(r"libubox\d+", n)]
    assert abi_names, names
    assert packages["kernel"].startswith(targetinfo(ib)["linux_kernel"]["version"])
    stripped = manifest_lines(make(ib, "manifest", "STRIP_ABI=1").stdout)
    assert "libubox" in stripped and not any(re.fullmatch(r"libubox\d+", n) for n in stripped)
    assert stripped["libubox"] == packages[abi_names[0]]
    assert len(stripped) == len(packages)


def test_manifest_minus_semantics(imagebuilder: IB) -> None:
    ib = imagebuilder("23.05.5", "ath79/generic")
    base = manifest_lines(make(ib, "manifest", f"PROFILE={ARCHER}").stdout)
    assert "dnsmasq" in base and "kmod-ath10k-ct" in base and "uboot-envtools" in base
    changed = manifest_lines(
        make(
            ib,
            "manifest",
            f"PROFILE={ARCHER}",
            "PACKAGES=-dnsmasq dnsmasq-full -kmod-ath10k-ct -uboot-envtools luci",
        ).stdout
    )
    assert "dnsmasq" not in changed and "dnsmasq-full" in changed and "luci" in changed
    assert "kmod-ath10k-ct" not in changed and "uboot-envtools" not in changed
    # a device package "-swconfig" removes the default package
    unifi = manifest_lines(make(ib, "manifest", "PROFILE=ubnt_unifiac-lite").stdout)
    assert "swconfig" not in unifi and "busybox" in unifi


def test_unknown_package_fails_with_opkg_wording(imagebuilder: IB) -> None:
    ib = imagebuilder("24.10.5", "x86/64")
    result = make(ib, "manifest", "PACKAGES=luci opkg-missing-pkg", check=False)
    assert result.returncode != 0
    assert result.stdout == ""
    assert (
        "Collected errors:\n * opkg_install_cmd: Cannot install package opkg-missing-pkg.\n"
        in result.stderr
    )


def test_conflict_fails_with_opkg_wording(imagebuilder: IB) -> None:
    ib = imagebuilder("24.10.5", "x86/64")
    result = make(ib, "manifest", "PACKAGES=dnsmasq-full", check=False)
    assert result.returncode != 0
    # the user's package installs first; the default dnsmasq then conflicts with it
    assert (
        "Collected errors:\n"
        " * check_conflicts_for: The following packages conflict with dnsmasq:\n"
        " * check_conflicts_for: \tdnsmasq-full * \n"
        " * opkg_install_cmd: Cannot install package dnsmasq.\n"
    ) in result.stderr


def test_unknown_profile(imagebuilder: IB) -> None:
    ib = imagebuilder("24.10.5", "x86/64")
    for target in ("image", "manifest"):
        result = make(ib, target, "PROFILE=no-such-device", check=False)
        assert result.returncode != 0
        assert result.stdout == (
            'Profile "no-such-device" does not exist!\n'
            'Use "make info" to get a list of available profile names.\n'
        )
    assert make(ib, "manifest", "PROFILE=DEVICE_generic").returncode == 0


def _ipk(control: str, files: dict[str, bytes]) -> bytes:
    def targz(members: dict[str, bytes]) -> bytes:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for name, content in members.items():
                info = tarfile.TarInfo(f"./{name}")
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        return gzip.compress(raw.getvalue(), mtime=0)

    return targz(
        {
            "debian-binary": b"2.0\n",
            "data.tar.gz": targz(files),
            "control.tar.gz": targz({"control": control.encode()}),
        }
    )


def test_local_packages_are_indexed_and_missing_dependencies_reported(imagebuilder: IB) -> None:
    ib = imagebuilder("24.10.5", "x86/64")
    arch = targetinfo(ib)["arch_packages"]
    (ib / "packages" / f"hello_1.0-r1_{arch}.ipk").write_bytes(
        _ipk(
            f"Package: hello\nVersion: 1.0-r1\nDepends: libc\nArchitecture: {arch}\n"
            "Description:  says hello\n",
            {"usr/bin/hello": b"#!/bin/sh\necho hello\n"},
        )
    )
    (ib / "packages" / "broken_2.0-r1_all.ipk").write_bytes(
        _ipk(
            "Package: broken\nVersion: 2.0-r1\nDepends: libc, libmissing (>= 2)\n"
            "Architecture: all\n"
            "Description:  needs a library nobody ships\n",
            {"usr/bin/broken": b"x"},
        )
    )
    ok = make(ib, "manifest", "PACKAGES=hello")
    assert manifest_lines(ok.stdout)["hello"] == "1.0-r1"
    assert "Package list missing or not up-to-date, generating it." in ok.stderr
    index = (ib / "packages" / "Packages").read_text()
    assert f"Filename: hello_1.0-r1_{arch}.ipk\nSize: " in index
    assert "kernel" not in index
    failed = make(ib, "manifest", "PACKAGES=broken", check=False)
    assert failed.returncode != 0
    assert (
        " * pkg_hash_check_unresolved: cannot find dependency libmissing (>= 2) for broken\n"
        in failed.stderr
    )
    assert " * opkg_install_cmd: Cannot install package broken.\n" in failed.stderr


def test_shell_and_make_syntax_in_values_is_inert(imagebuilder: IB, tmp_path: Path) -> None:
    ib = imagebuilder("24.10.5", "x86/64")
    marker = tmp_path / "pwned"
    evil = f"$(shell touch {marker}) `touch {marker}` $$(touch {marker}); touch {marker} 'q"
    result = make(ib, "manifest", f"PACKAGES={evil}", check=False)
    assert result.returncode != 0
    assert not marker.exists()
    assert " * opkg_install_cmd: Cannot install package $(shell.\n" in result.stderr


# --- package queries --------------------------------------------------------------------------


def test_package_queries(imagebuilder: IB) -> None:
    ib = imagebuilder("24.10.5", "x86/64")
    listing = make(ib, "package_list").stdout
    assert re.search(r"^busybox - \S+ - \d+ - \S.*$", listing, re.MULTILINE)
    names = [line.split(" - ")[0] for line in listing.splitlines()]
    assert names == sorted(names)
    depends = make(ib, "package_depends", "PACKAGE=dnsmasq").stdout
    assert depends.startswith("dnsmasq depends on:\n\tlibc\n")
    whatdepends = make(ib, "package_whatdepends", "PACKAGE=libubox*").stdout
    root_set = re.match(r"Root set:\n  (libubox\d+)\nWhat depends on root set\n", whatdepends)
    assert root_set, whatdepends
    dependent = rf"^\t\S+ \S+\tdepends on {root_set.group(1)}$"
    assert re.search(dependent, whatdepends, re.MULTILINE), whatdepends
    missing = make(ib, "package_depends", check=False)
    assert missing.returncode != 0
    assert "Variable `PACKAGE` is not set" in missing.stdout


# --- feeds and signatures ---------------------------------------------------------------------


def _feed_line(ib: Path, name: str) -> str:
    return next(
        line
        for line in (ib / "repositories.conf").read_text().splitlines()
        if line.startswith(f"src/gz {name} ")
    )


def test_tampered_package_list_is_rejected(
    imagebuilder: IB, mirror: MirrorFixture, tmp_path: Path
) -> None:
    ib = imagebuilder("24.10.5", "x86/64")
    url = _feed_line(ib, "openwrt_core").split()[2]
    feed = tmp_path / "tampered-core"
    shutil.copytree(Path(url.removeprefix("file://")), feed)
    text = gzip.decompress((feed / "Packages.gz").read_bytes()).decode()
    (feed / "Packages.gz").write_bytes(
        gzip.compress(text.replace("Version: ", "Version: 9", 1).encode())
    )
    conf = ib / "repositories.conf"
    conf.write_text(conf.read_text().replace(url, feed.as_uri()))
    result = make(ib, "manifest", check=False)
    assert result.returncode != 0
    assert "Signature check failed.\nRemove wrong Signature file.\n" in result.stderr
    assert " * opkg_install_cmd: Cannot install package base-files.\n" in result.stderr
    # the untouched signature still verifies the original list with the mirror key
    key = PublicKey.from_text((ib / "keys" / mirror.fingerprint).read_text())
    key.verify(text.encode(), (feed / "Packages.sig").read_text())


def test_unreachable_feed_names_the_url(imagebuilder: IB) -> None:
    ib = imagebuilder("24.10.5", "x86/64")
    url = _feed_line(ib, "openwrt_base").split()[2]
    dead = "http://127.0.0.1:9/releases/base"
    conf = ib / "repositories.conf"
    conf.write_text(conf.read_text().replace(url, dead))
    result = make(ib, "manifest", check=False)
    assert result.returncode != 0
    assert f" * opkg_download: Failed to download {dead}/Packages.gz, wget returned 4.\n" in (
        result.stderr
    )
    assert f"*** Failed to download the package list from {dead}/Packages.gz" in result.stderr
    assert "Cannot install package" in result.stderr


@pytest.fixture
def http_mirror(mirror: MirrorFixture) -> Iterator[str]:
    with mirror_over_http(mirror.root) as url:
        yield url


def test_feeds_over_http(imagebuilder: IB, mirror: MirrorFixture, http_mirror: str) -> None:
    ib = imagebuilder("23.05.5", "ramips/mt7621")
    conf = ib / "repositories.conf"
    conf.write_text(conf.read_text().replace(mirror.root.as_uri(), http_mirror))
    result = make(ib, "manifest")
    assert "busybox" in manifest_lines(result.stdout)
    assert f"Downloading {http_mirror}/releases/23.05.5/" in result.stderr
    assert any((ib / "dl").glob("busybox_*.ipk"))  # the download cache


# --- images -----------------------------------------------------------------------------------


def _check_sha256sums(directory: Path) -> None:
    lines = (directory / "sha256sums").read_text().splitlines()
    names = [line.split(" *", 1)[1] for line in lines]
    assert names == sorted(names, key=str.encode)
    assert set(names) == {p.name for p in directory.iterdir() if p.name != "sha256sums"}
    for line in lines:
        digest, name = line.split(" *", 1)
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == digest


@pytest.mark.slow
def test_ath79_image_outputs(imagebuilder: IB) -> None:
    ib = imagebuilder("23.05.5", "ath79/generic")
    result = make(ib, "image", f"PROFILE={ARCHER}", "EXTRA_IMAGE_NAME=Test_Build 1")
    info = targetinfo(ib)
    device = next(d for d in info["devices"] if d["id"] == ARCHER)
    assert result.stdout.startswith(
        "Building images for ath79 - TP-Link Archer C7 v5\nPackages: ath10k-firmware-qca988x-ct "
    )
    for step in (
        "\nInstalling packages...\n",
        "\nFinalizing root filesystem...\n",
        "\nBuilding images...\n",
        "\nCalculating checksums...\n",
    ):
        assert step in result.stdout
    out = bin_dir(ib)
    prefix = f"openwrt-23.05.5-test-build-1-ath79-generic-{ARCHER}"
    assert sorted(p.name for p in out.iterdir()) == [
        f"{prefix}-squashfs-factory.bin",
        f"{prefix}-squashfs-sysupgrade.bin",
        f"{prefix}.manifest",
        "profiles.json",
        "sha256sums",
    ]
    _check_sha256sums(out)
    raw = (out / "profiles.json").read_text()
    document = json.loads(raw)
    assert raw == json.dumps(document, sort_keys=True, separators=(",", ":"))
    assert set(document) == {
        "arch_packages",
        "default_packages",
        "metadata_version",
        "profiles",
        "source_date_epoch",
        "target",
        "version_code",
        "version_number",
    }
    assert document["default_packages"] == sorted(info["default_packages"])
    assert document["target"] == "ath79/generic" and document["metadata_version"] == 1
    assert list(document["profiles"]) == [ARCHER]
    profile = document["profiles"][ARCHER]
    assert profile["image_prefix"] == prefix
    assert profile["supported_devices"] == device["supported_devices"]
    assert profile["titles"] == device["titles"]
    assert profile["device_packages"] == device["packages"]
    by_type = {i["type"]: i for i in profile["images"]}
    assert set(by_type) == {"sysupgrade", "factory"}
    for entry in profile["images"]:
        assert set(entry) == {"filesystem", "name", "sha256", "sha256_unsigned", "type"}
        assert hashlib.sha256((out / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]
    # sysupgrade: fwtool metadata, then the signature chunk of the local build key
    sysupgrade = (out / by_type["sysupgrade"]["name"]).read_bytes()
    chunks = fwtool.read_chunks(sysupgrade)
    assert [c.type for c in chunks] == [fwtool.TYPE_SIGNATURE, fwtool.TYPE_METADATA]
    assert (
        hashlib.sha256(sysupgrade[: chunks[0].offset]).hexdigest()
        == (by_type["sysupgrade"]["sha256_unsigned"])
    )
    metadata = chunks[1].metadata()
    assert metadata["supported_devices"] == device["supported_devices"]
    assert metadata["version"] == {
        "dist": "OpenWrt",
        "version": "23.05.5",
        "revision": info["version_code"],
        "target": "ath79/generic",
        "board": ARCHER,
    }
    factory = by_type["factory"]
    assert factory["sha256"] == factory["sha256_unsigned"]
    assert fwtool.read_chunks((out / factory["name"]).read_bytes()) == []
    # the image manifest is the ABI-named package list
    manifest = (out / f"{prefix}.manifest").read_text()
    assert manifest == make(ib, "manifest", f"PROFILE={ARCHER}").stdout
    # the rootfs inside the image carries the opkg database of 23.05
    with squashfs_rootfs(out / by_type["sysupgrade"]["name"]) as tar:
        status = tar.extractfile("./usr/lib/opkg/status").read().decode()
        assert "./usr/lib/opkg/info/busybox.control" in tar.getnames()
        assert not any(n.endswith((".postinst", ".prerm")) for n in tar.getnames())
    stanzas = {s.split("\n", 1)[0]: s for s in status.split("\n\n")}
    assert "Status: install user installed" in stanzas["Package: busybox"]
    libubox = next(s for k, s in stanzas.items() if re.fullmatch(r"Package: libubox\d+", k))
    assert "Auto-Installed: yes" in libubox and "\nProvides: libubox\n" in libubox
    assert f"Installed-Time: {info['source_date_epoch']}" in libubox


@pytest.mark.slow
def test_x86_image_outputs(imagebuilder: IB) -> None:
    ib = imagebuilder("24.10.5", "x86/64")
    make(ib, "image")
    out = bin_dir(ib)
    prefix = "openwrt-24.10.5-x86-64-generic"
    expected = {
        f"{prefix}-{fs}-{kind}.img.gz"
        for fs in ("ext4", "squashfs")
        for kind in ("combined", "combined-efi", "rootfs")
    }
    expected |= {
        f"{prefix}-kernel.bin",
        f"{prefix}-rootfs.tar.gz",
        f"{prefix}.manifest",
        "profiles.json",
        "sha256sums",
    }
    assert {p.name for p in out.iterdir()} == expected
    _check_sha256sums(out)
    document = profiles(out)
    assert document["linux_kernel"] == targetinfo(ib)["linux_kernel"]
    profile = document["profiles"]["generic"]
    assert profile["supported_devices"] == []
    assert profile["titles"] == [{"vendor": "Generic", "model": "x86/64"}]
    assert len(profile["images"]) == 6
    for entry in profile["images"]:
        data = (out / entry["name"]).read_bytes()
        stream = zlib.decompressobj(wbits=31)
        inner = stream.decompress(data)
        if entry["type"] == "rootfs":
            assert entry["sha256"] == entry["sha256_unsigned"]
            assert stream.unused_data == b""
        else:  # the fwtool trailer sits after the gzip stream (research §4.7)
            assert entry["sha256"] != entry["sha256_unsigned"]
            assert inner.startswith(b"FFIB\x00img")
            assert [c.type for c in fwtool.read_chunks(data)] == [fwtool.TYPE_SIGNATURE]
    assert (out / f"{prefix}-kernel.bin").read_bytes() == next(
        ib.glob("build_dir/target-*/linux-*/vmlinux")
    ).read_bytes()
    with rootfs_of_x86(out) as tar:
        assert "./etc/openwrt_release" in tar.getnames()
        status = tar.extractfile("./usr/lib/opkg/status").read().decode()
    assert "user" not in re.findall(r"^Status: (.*)$", status, re.MULTILINE)[0]
    assert "Status: install ok installed" in status and "install user" not in status


@pytest.mark.slow
def test_files_services_and_package_changes_reach_the_image(
    imagebuilder: IB, tmp_path: Path
) -> None:
    ib = imagebuilder("24.10.5", "x86/64")
    files = tmp_path / "files"
    (files / "etc" / "init.d").mkdir(parents=True)
    (files / "etc" / "banner").write_text("firmforge test banner\n")
    service = files / "etc" / "init.d" / "myservice"
    service.write_text("#!/bin/sh /etc/rc.common\nSTART=99\nSTOP=1\n")
    service.chmod(0o755)
    first, second = tmp_path / "first", tmp_path / "second"
    make(ib, "image", f"BIN_DIR={first}", f"FILES={files}", "DISABLED_SERVICES=dropbear dnsmasq")
    make(ib, "image", f"BIN_DIR={second}", "PACKAGES=luci -ppp-mod-pppoe -ppp")
    with rootfs_of_x86(first) as tar:
        names = set(tar.getnames())
        assert tar.extractfile("./etc/banner").read() == b"firmforge test banner\n"
        links = {m.name: m.linkname for m in tar.getmembers() if m.name.startswith("./etc/rc.d/")}
    assert links["./etc/rc.d/S99myservice"] == "../init.d/myservice"
    assert links["./etc/rc.d/K1myservice"] == "../init.d/myservice"
    assert "./etc/init.d/dropbear" in names and "./etc/init.d/dnsmasq" in names
    assert not any(re.fullmatch(r"\./etc/rc\.d/[SK]\d\d?(dropbear|dnsmasq)", n) for n in links)
    assert any(n.endswith("firewall") for n in links)
    with rootfs_of_x86(second) as tar:
        second_names = set(tar.getnames())
    assert "./etc/banner" not in second_names
    assert any("/www/luci-static/" in n for n in second_names)
    assert any(re.fullmatch(r"\./etc/rc\.d/S\d+dropbear", n) for n in second_names)
    first_images = {
        i["type"] + i["filesystem"]: i["sha256_unsigned"]
        for i in profiles(first)["profiles"]["generic"]["images"]
    }
    second_images = {
        i["type"] + i["filesystem"]: i["sha256_unsigned"]
        for i in profiles(second)["profiles"]["generic"]["images"]
    }
    assert first_images.keys() == second_images.keys()
    assert all(first_images[k] != second_images[k] for k in first_images)
    manifest = next(second.glob("*.manifest")).read_text()
    assert "\nluci - " in manifest and "\nppp - " not in manifest


@pytest.mark.slow
def test_builds_are_reproducible(imagebuilder: IB, tmp_path: Path) -> None:
    ib = imagebuilder("23.05.5", "ramips/mt7621")
    device = targetinfo(ib)["devices"][0]["id"]
    args = ("image", f"PROFILE={device}", "PACKAGES=luci", "EXTRA_IMAGE_NAME=abc123def456")
    make(ib, *args, f"BIN_DIR={tmp_path / 'one'}")
    make(ib, *args, f"BIN_DIR={tmp_path / 'two'}")
    one = (tmp_path / "one" / "sha256sums").read_text()
    assert one == (tmp_path / "two" / "sha256sums").read_text()
    # a second copy of the IB has its own local signing key: only the signature chunk differs
    fresh = tmp_path / "fresh"
    skipped = {"bin", "dl", "tmp", "key-build", "key-build.pub", "key-build.ucert"}

    def ignore(directory: str, names: list[str]) -> set[str]:
        here = Path(directory)
        return {
            n
            for n in names
            if (here == ib and n in skipped)
            or n.startswith("root-")
            or (here.name == "packages" and n in ("Packages.gz", "Packages.sig"))
        }

    shutil.copytree(ib, fresh, symlinks=True, ignore=ignore)
    for key in (fresh / "keys").iterdir():
        if key.read_text().startswith("untrusted comment: Local build key"):
            key.unlink()
    make(fresh, *args, f"BIN_DIR={tmp_path / 'three'}")
    unsigned = [
        sorted(i["sha256_unsigned"] for p in profiles(d)["profiles"].values() for i in p["images"])
        for d in (tmp_path / "one", tmp_path / "three")
    ]
    assert unsigned[0] == unsigned[1]


@pytest.mark.slow
def test_too_big_image_is_dropped_with_a_warning(imagebuilder: IB, tmp_path: Path) -> None:
    ib = imagebuilder("24.10.5", "ath79/generic")
    devices = [d for d in targetinfo(ib)["devices"] if d["image_size"]]
    device = min(devices, key=lambda d: d["image_size"])
    files = tmp_path / "files"
    (files / "root").mkdir(parents=True)
    (files / "root" / "blob").write_bytes(os.urandom(device["image_size"]))
    out = tmp_path / "out"
    result = make(ib, "image", f"PROFILE={device['id']}", f"FILES={files}", f"BIN_DIR={out}")
    warnings = re.findall(r"WARNING: Image file (\S+) is too big: (\d+) > (\d+)", result.stderr)
    assert warnings, result.stderr
    for path, size, limit in warnings:
        assert int(size) > int(limit) == device["image_size"]
        assert not Path(path).exists()
    assert not list(out.glob("*.bin"))
    assert not (out / "profiles.json").exists() or device["id"] not in profiles(out)["profiles"]
    _check_sha256sums(out)


@pytest.mark.slow
def test_ext4_out_of_space_fails(imagebuilder: IB, tmp_path: Path) -> None:
    ib = imagebuilder("23.05.5", "x86/64")
    out = tmp_path / "out"
    result = make(ib, "image", "ROOTFS_PARTSIZE=1", f"BIN_DIR={out}", check=False)
    assert result.returncode != 0
    assert re.search(
        r"error: ext4_allocate_best_fit_partial: failed to allocate \d+ blocks, out of space\?",
        result.stderr,
    )
    assert not list(out.glob("*.img.gz"))
    # the default partition size fits, and ROOTFS_PARTSIZE is reflected in the ext4 images
    make(ib, "image", "ROOTFS_PARTSIZE=200", f"BIN_DIR={tmp_path / 'big'}")
    assert len(profiles(tmp_path / "big")["profiles"]["generic"]["images"]) == 6


@pytest.mark.slow
def test_profiles_json_accumulates_and_clean(imagebuilder: IB) -> None:
    ib = imagebuilder("24.10.5", "ramips/mt7621")
    first, second = (d["id"] for d in targetinfo(ib)["devices"][:2])
    make(ib, "image", f"PROFILE={first}")
    make(ib, "image", f"PROFILE={second}", "ADD_LOCAL_KEY=1")
    out = bin_dir(ib)
    assert set(profiles(out)["profiles"]) == {first, second}
    _check_sha256sums(out)
    local_key = (ib / "key-build.pub").read_text()
    fingerprint = PublicKey.from_text(local_key).fingerprint_hex
    root = next(ib.glob("build_dir/target-*/root-ramips"))
    assert (root / "etc" / "opkg" / "keys" / fingerprint).read_text() == local_key
    make(ib, "clean")
    assert not out.exists() and not (ib / "tmp").exists() and not (ib / "dl").exists()
    assert any(ib.glob("build_dir/target-*/linux-*/vmlinux"))
