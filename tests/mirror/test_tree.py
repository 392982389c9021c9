"""The generated mirror tree against the real formats (research/imagebuilder-formats.md §1–§4)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from firmforge import fwtool
from firmforge.mirror._distribution import DEVICES, RELEASES, TARGETS
from firmforge.usign import PublicKey, UsignError
from tests.conftest import MirrorFixture

VERSIONS = [r.version for r in RELEASES]
TARGET_NAMES = [t.name for t in TARGETS]
SHA256SUMS_LINE = re.compile(r"^[0-9a-f]{64} \*[^\s].*$")


def parse_packages(text: str) -> list[dict[str, str]]:
    stanzas = []
    for block in text.strip("\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(" "):
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
        stanzas.append(fields)
    return stanzas


def package_dirs(mirror: MirrorFixture, version: str) -> list[Path]:
    release_dir = mirror.root / "releases" / version
    return sorted(p.parent for p in release_dir.rglob("Packages"))


def test_versions_json(mirror: MirrorFixture) -> None:
    versions = json.loads((mirror.root / ".versions.json").read_text())
    assert set(versions) == {
        "stable_version",
        "oldstable_version",
        "upcoming_version",
        "versions_list",
    }
    assert versions["stable_version"] == "24.10.5"
    assert versions["oldstable_version"] == "23.05.5"
    assert versions["upcoming_version"] == ""  # present and falsy when there is no RC
    assert set(versions["versions_list"]) == set(VERSIONS)
    for version in versions["versions_list"]:
        assert (mirror.root / "releases" / version / ".targets.json").is_file()


@pytest.mark.parametrize("version", VERSIONS)
def test_targets_and_overview(mirror: MirrorFixture, version: str) -> None:
    release_dir = mirror.root / "releases" / version
    targets = json.loads((release_dir / ".targets.json").read_text())
    assert targets == {
        "x86/64": "x86_64",
        "ath79/generic": "mips_24kc",
        "ramips/mt7621": "mipsel_24kc",
    }
    overview = json.loads((release_dir / ".overview.json").read_text())
    assert overview["release"] == version
    ids = {(p["target"], p["id"]) for p in overview["profiles"]}
    assert ("ath79/generic", "tplink_archer-c7-v5") in ids
    for profile in overview["profiles"]:
        assert profile["titles"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("target", TARGET_NAMES)
def test_profiles_json_schema(mirror: MirrorFixture, version: str, target: str) -> None:
    target_dir = mirror.target_dir(version, target)
    text = (target_dir / "profiles.json").read_text()
    document = json.loads(text)
    # one line, keys sorted at every level, no trailing newline (json_overview_image_info.py)
    assert text == json.dumps(document, sort_keys=True, separators=(",", ":"))
    assert document["metadata_version"] == 1
    assert document["target"] == target
    assert document["version_number"] == version
    assert re.fullmatch(r"r\d+-[0-9a-f]{10}", document["version_code"])
    assert isinstance(document["source_date_epoch"], int)
    assert document["default_packages"] == sorted(document["default_packages"])
    if version.startswith("23.05"):
        assert "linux_kernel" not in document
    else:
        kernel = document["linux_kernel"]
        assert set(kernel) == {"version", "release", "vermagic"}
        assert re.fullmatch(r"[0-9a-f]{32}", kernel["vermagic"])
        kmods = f"{kernel['version']}-{kernel['release']}-{kernel['vermagic']}"
        assert (target_dir / "kmods" / kmods / "Packages").is_file()
    board, subtarget = target.split("/")
    for profile_id, profile in document["profiles"].items():
        assert set(profile) == {
            "device_packages",
            "image_prefix",
            "images",
            "supported_devices",
            "titles",
        }
        assert profile["image_prefix"] == f"openwrt-{version}-{board}-{subtarget}-{profile_id}"
        for image in profile["images"]:
            assert image["name"].startswith(profile["image_prefix"] + "-")
            assert image["name"].split("-")[-1].split(".")[0] == image["type"].split("-")[-1]
            content = (target_dir / image["name"]).read_bytes()
            assert hashlib.sha256(content).hexdigest() == image["sha256"]
            signed = [c for c in fwtool.read_chunks(content) if c.type == fwtool.TYPE_SIGNATURE]
            unsigned = content[: signed[0].offset] if signed else content
            assert hashlib.sha256(unsigned).hexdigest() == image["sha256_unsigned"]


def test_ath79_profiles_use_vendor_model_commas(mirror: MirrorFixture) -> None:
    document = json.loads(
        (mirror.target_dir("24.10.5", "ath79/generic") / "profiles.json").read_text()
    )
    profiles = document["profiles"]
    assert len(profiles) >= 5
    assert profiles["tplink_archer-c7-v5"]["supported_devices"] == [
        "tplink,archer-c7-v5",
        "archer-c7-v5",
    ]
    assert profiles["tplink_archer-c7-v5"]["titles"] == [
        {"model": "Archer C7", "variant": "v5", "vendor": "TP-Link"}
    ]
    assert "-swconfig" in profiles["ubnt_unifiac-lite"]["device_packages"]
    sysupgrade = next(
        i for i in profiles["tplink_archer-c7-v5"]["images"] if i["type"] == "sysupgrade"
    )
    content = (mirror.target_dir("24.10.5", "ath79/generic") / sysupgrade["name"]).read_bytes()
    metadata = next(c for c in fwtool.read_chunks(content) if c.type == fwtool.TYPE_METADATA)
    assert metadata.metadata()["supported_devices"] == ["tplink,archer-c7-v5", "archer-c7-v5"]
    x86 = json.loads((mirror.target_dir("24.10.5", "x86/64") / "profiles.json").read_text())
    generic = x86["profiles"]["generic"]
    assert generic["supported_devices"] == []
    assert sorted((i["filesystem"], i["type"]) for i in generic["images"]) == sorted(
        (fs, t) for fs in ("ext4", "squashfs") for t in ("combined", "combined-efi", "rootfs")
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_sha256sums_cover_every_file_and_are_signed(
    mirror: MirrorFixture, version: str, signify: str
) -> None:
    release_dir = mirror.root / "releases" / version
    for sums in release_dir.rglob("sha256sums"):
        directory = sums.parent
        lines = sums.read_text().splitlines()
        assert lines == sorted(lines, key=lambda line: line[66:].encode())
        listed = {}
        for line in lines:
            assert SHA256SUMS_LINE.match(line), line
            listed[line[66:]] = line[:64]
        on_disk = {
            p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()
        } - {"sha256sums", "sha256sums.sig"}
        assert set(listed) == on_disk
        for name, digest in listed.items():
            assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == digest
        verified = subprocess.run(
            [
                signify,
                "-V",
                "-p",
                str(mirror.public_key),
                "-x",
                str(sums) + ".sig",
                "-m",
                str(sums),
            ],
            capture_output=True,
            text=True,
        )
        assert verified.returncode == 0, verified.stderr
        assert "Signature Verified" in verified.stdout


def test_tampered_sha256sums_fails_independent_verification(
    mirror: MirrorFixture, signify: str, tmp_path: Path
) -> None:
    original = mirror.target_dir("24.10.5", "x86/64") / "sha256sums"
    tampered = tmp_path / "sha256sums"
    tampered.write_bytes(original.read_bytes().replace(b"*", b"*x", 1))
    (tmp_path / "sha256sums.sig").write_bytes(original.with_name("sha256sums.sig").read_bytes())
    result = subprocess.run(
        [
            signify,
            "-V",
            "-p",
            str(mirror.public_key),
            "-x",
            str(tmp_path / "sha256sums.sig"),
            "-m",
            str(tampered),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    with pytest.raises(UsignError):
        PublicKey.from_text(mirror.public_key.read_text()).verify(
            tampered.read_bytes(), (tmp_path / "sha256sums.sig").read_text()
        )


@pytest.mark.parametrize("version", VERSIONS)
def test_package_indexes(mirror: MirrorFixture, version: str, signify: str) -> None:
    key = PublicKey.from_text(mirror.public_key.read_text())
    for directory in package_dirs(mirror, version):
        packages = (directory / "Packages").read_bytes()
        assert gzip.decompress((directory / "Packages.gz").read_bytes()) == packages
        key.verify(packages, (directory / "Packages.sig").read_text())
        verified = subprocess.run(
            [
                signify,
                "-V",
                "-q",
                "-p",
                str(mirror.public_key),
                "-x",
                str(directory / "Packages.sig"),
                "-m",
                str(directory / "Packages"),
            ]
        )
        assert verified.returncode == 0
        assert (64 + len(packages)) % 128 not in (110, 111)  # usign SHA-512 bug work-around
        stanzas = parse_packages(packages.decode()) if packages else []
        manifest = parse_packages((directory / "Packages.manifest").read_text()) if packages else []
        assert [s["Package"] for s in manifest] == [s["Package"] for s in stanzas]
        for full, published in zip(manifest, stanzas, strict=True):
            assert "Maintainer" in full and "Maintainer" not in published
        index = json.loads((directory / "index.json").read_text())
        for stanza in stanzas:
            assert list(stanza)[-4:] == ["Filename", "Size", "SHA256sum", "Description"]
            ipk = (directory / stanza["Filename"]).read_bytes()
            assert len(ipk) == int(stanza["Size"])
            assert hashlib.sha256(ipk).hexdigest() == stanza["SHA256sum"]
            assert stanza["Filename"] == (
                f"{stanza['Package']}_{stanza['Version']}_{stanza['Architecture']}.ipk"
            )
            if version.startswith("23.05"):
                assert index["packages"][stanza["Package"]] == stanza["Version"]
            else:
                abi = stanza.get("ABIVersion", "")
                name = (
                    stanza["Package"].removesuffix(abi).removesuffix("-")
                    if abi
                    else (stanza["Package"])
                )
                assert index["packages"][name] == stanza["Version"]
        if version.startswith("23.05"):
            assert set(index) == {"architecture", "packages"}
            assert "\n" not in (directory / "index.json").read_text().strip()
        else:
            assert list(index) == ["version", "architecture", "packages"]
            assert index["version"] == 2


def test_abi_versioned_libraries_and_conflict_pair(mirror: MirrorFixture) -> None:
    base = mirror.root / "releases/24.10.5/packages/mips_24kc/base"
    stanzas = {s["Package"]: s for s in parse_packages((base / "Packages").read_text())}
    libubox = stanzas["libubox20240329"]
    assert libubox["ABIVersion"] == "20240329"
    assert "libubox" in libubox["Provides"]
    assert "libubox20240329" in stanzas["netifd"]["Depends"]
    assert "libjson-c5" in stanzas and "libnl-tiny1" in stanzas
    assert "dnsmasq-full" in stanzas["dnsmasq"]["Conflicts"]
    assert "dnsmasq" in stanzas["dnsmasq-full"]["Conflicts"]
    index = json.loads((base / "index.json").read_text())
    assert "libubox" in index["packages"] and "libubox20240329" not in index["packages"]
    old = json.loads(
        (mirror.root / "releases/23.05.5/packages/mips_24kc/base/index.json").read_text()
    )
    assert "libubox20230523" in old["packages"]


def _ipk_members(ipk: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(ipk), mode="r:gz") as outer:
        names = outer.getnames()
        assert names == ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]
        return {name: outer.extractfile(name).read() for name in names}  # type: ignore[union-attr]


def test_ipk_structure_matches_index(mirror: MirrorFixture) -> None:
    base = mirror.root / "releases/24.10.5/packages/x86_64/base"
    stanza = next(
        s for s in parse_packages((base / "Packages").read_text()) if s["Package"] == "dnsmasq"
    )
    members = _ipk_members((base / stanza["Filename"]).read_bytes())
    assert members["./debian-binary"] == b"2.0\n"
    with tarfile.open(fileobj=io.BytesIO(members["./control.tar.gz"])) as control_tar:
        control = control_tar.extractfile("./control").read().decode()  # type: ignore[union-attr]
        assert {"./control", "./postinst", "./prerm", "./conffiles"} <= set(control_tar.getnames())
    assert "Package: dnsmasq\n" in control and "Description:  DNS and DHCP server" in control
    assert f"Installed-Size: {stanza['Installed-Size']}\n" in control
    with tarfile.open(fileobj=io.BytesIO(members["./data.tar.gz"])) as data_tar:
        names = data_tar.getnames()
        init = data_tar.extractfile("./etc/init.d/dnsmasq").read()  # type: ignore[union-attr]
        assert all(
            m.uid == 0 and m.mtime == RELEASES[-1].source_date_epoch for m in data_tar.getmembers()
        )
    assert init.startswith(b"#!/bin/sh /etc/rc.common\n") and b"START=19" in init
    assert "./usr/sbin/dnsmasq" in names


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("target", TARGET_NAMES)
def test_every_dependency_resolves(mirror: MirrorFixture, version: str, target: str) -> None:
    """What the IB's feeds offer for a target satisfies every Depends line in them."""
    target_spec = next(t for t in TARGETS if t.name == target)
    release_dir = mirror.root / "releases" / version
    directories = [
        *(release_dir / "targets" / target).glob("**/Packages"),
        *(release_dir / "packages" / target_spec.arch_packages).glob("*/Packages"),
    ]
    stanzas = [s for d in directories if d.read_bytes() for s in parse_packages(d.read_text())]
    provided = {"libc", "kernel"}  # installed from the IB's build_dir, in no index
    for stanza in stanzas:
        provided.add(stanza["Package"])
        provided.update(p.strip() for p in stanza.get("Provides", "").split(",") if p.strip())
    for stanza in stanzas:
        for dependency in filter(None, stanza.get("Depends", "").split(", ")):
            alternatives = [alt.split(" (")[0].strip() for alt in dependency.split("|")]
            assert any(a in provided for a in alternatives), (stanza["Package"], dependency)


def test_kmods_pin_the_kernel_in_the_imagebuilder(mirror: MirrorFixture) -> None:
    target_dir = mirror.target_dir("24.10.5", "ath79/generic")
    kmods = next((target_dir / "kmods").iterdir())
    ath9k = next(
        s for s in parse_packages((kmods / "Packages").read_text()) if s["Package"] == "kmod-ath9k"
    )
    pinned = re.match(r"kernel \(=(.+)\)", ath9k["Depends"])
    assert pinned is not None
    kernel_version = pinned.group(1)
    assert re.fullmatch(r"6\.6\.119~[0-9a-f]{32}-r1", kernel_version)
    assert (target_dir / "packages" / f"kernel_{kernel_version}_mips_24kc.ipk").is_file()
    packages_23 = parse_packages(
        (mirror.target_dir("23.05.5", "ath79/generic") / "packages/Packages").read_text()
    )
    assert any(s["Package"] == "kmod-ath9k" for s in packages_23)  # pre-split: kmods here
    assert not (mirror.target_dir("23.05.5", "ath79/generic") / "kmods").exists()


def _read_ib(tarball: Path) -> tarfile.TarFile:
    raw = tarball.read_bytes()
    if tarball.name.endswith(".zst"):
        assert raw[:4] == b"\x28\xb5\x2f\xfd"
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    else:
        assert raw[:6] == b"\xfd7zXZ\x00"
        import lzma

        raw = lzma.decompress(raw)
    return tarfile.open(fileobj=io.BytesIO(raw))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("target", TARGET_NAMES)
def test_imagebuilder_tarball_layout(mirror: MirrorFixture, version: str, target: str) -> None:
    tarball = mirror.imagebuilder_tarball(version, target)
    board, subtarget = target.split("/")
    extension = "tar.xz" if version.startswith("23.05") else "tar.zst"
    assert tarball.name == (
        f"openwrt-imagebuilder-{version}-{board}-{subtarget}.Linux-x86_64.{extension}"
    )
    sums = (tarball.parent / "sha256sums").read_text()
    assert f"{hashlib.sha256(tarball.read_bytes()).hexdigest()} *{tarball.name}" in sums
    top = tarball.name.rsplit(".tar.", 1)[0]
    release = next(r for r in RELEASES if r.version == version)
    with _read_ib(tarball) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert {m.split("/")[0] for m in members} == {top}
        assert all(m.mtime <= release.source_date_epoch for m in members.values())
        for required in (
            "Makefile",
            ".config",
            "repositories.conf",
            "packages/Packages",
            f"keys/{mirror.fingerprint}",
            "staging_dir/host/bin/ib-tool",
            f"target/linux/{board}/Makefile",
            ".targetinfo.json",
        ):
            assert f"{top}/{required}" in members, required
        assert any(
            re.fullmatch(
                rf"{top}/build_dir/target-[^/]+_musl/linux-{board}_{subtarget}"
                r"/kernel_.+\.ipk",
                name,
            )
            for name in members
        )
        repositories = tar.extractfile(f"{top}/repositories.conf").read().decode()  # type: ignore[union-attr]
        key = tar.extractfile(f"{top}/keys/{mirror.fingerprint}").read()  # type: ignore[union-attr]
    assert key == mirror.public_key.read_bytes().replace(
        b"firmforge synthetic mirror key", f"public key {mirror.fingerprint}".encode()
    )
    root = f"https://downloads.openwrt.org/releases/{version}"
    assert f"src/gz openwrt_core {root}/targets/{target}/packages\n" in repositories
    assert "src imagebuilder file:packages\n" in repositories
    assert repositories.rstrip().endswith("option check_signature")
    assert ("openwrt_kmods" in repositories) == (not version.startswith("23.05"))
    first_line = repositories.splitlines()[0]
    if version.startswith("23.05"):
        assert first_line.startswith("## Place your custom repositories here")
    else:
        assert first_line == "## Remote package repositories"


def test_devices_cover_the_required_targets() -> None:
    targets = {d.target for d in DEVICES}
    assert {"x86/64", "ath79/generic", "ramips/mt7621"} <= targets
    assert any(d.id == "generic" and d.target == "x86/64" for d in DEVICES)
