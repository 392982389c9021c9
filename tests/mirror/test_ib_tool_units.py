"""Unit tests of the synthetic ImageBuilder's host tools (``firmforge/mirror/ib/*.py``).

Those modules run inside an unpacked IB as top-level modules next to ``ib-tool``, so they are
imported here the same way: with their directory on ``sys.path``.
"""

from __future__ import annotations

import gzip
import importlib
import io
import os
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import firmforge.fwtool
import firmforge.mirror
from firmforge.usign import PublicKey, SecretKey

IB_DIR = Path(firmforge.mirror.__file__).parent / "ib"


def _module(name: str) -> ModuleType:
    if str(IB_DIR) not in sys.path:
        sys.path.insert(0, str(IB_DIR))
    sys.modules.setdefault("fwtool", firmforge.fwtool)
    return importlib.import_module(name)


ed25519 = _module("ibtool_ed25519")
index = _module("ibtool_index")
rootfs = _module("ibtool_rootfs")
image = _module("ibtool_image")
ib_tool = _module("ib_tool")

# RFC 8032 §7.1, TEST 1 and TEST 2
RFC_VECTORS = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]


# --- Ed25519 / usign ---------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "public", "message", "signature"), RFC_VECTORS)
def test_rfc8032_vectors(seed: str, public: str, message: str, signature: str) -> None:
    seed_b, msg = bytes.fromhex(seed), bytes.fromhex(message)
    assert ed25519.public_key(seed_b).hex() == public
    assert ed25519.sign(seed_b, msg).hex() == signature
    assert ed25519.verify(bytes.fromhex(public), msg, bytes.fromhex(signature))


def test_matches_cryptography_both_ways() -> None:
    for size in (0, 1, 64, 173, 1000):
        seed, message = os.urandom(32), os.urandom(size)
        key = Ed25519PrivateKey.from_private_bytes(seed)
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        assert ed25519.public_key(seed) == public
        assert ed25519.sign(seed, message) == key.sign(message)
        assert ed25519.verify(public, message, key.sign(message))


def test_verify_rejects_forgeries() -> None:
    seed = os.urandom(32)
    public, signature = ed25519.public_key(seed), ed25519.sign(seed, b"Packages")
    assert not ed25519.verify(public, b"Packages!", signature)
    flipped = bytearray(signature)
    flipped[40] ^= 1
    assert not ed25519.verify(public, b"Packages", bytes(flipped))
    # S >= L (malleability) and malformed sizes are refused
    big_s = signature[:32] + (2**253 - 1).to_bytes(32, "little")
    assert not ed25519.verify(public, b"Packages", big_s)
    assert not ed25519.verify(public[:31], b"Packages", signature)
    assert not ed25519.verify(b"\xff" * 32, b"Packages", signature)


def test_usign_files_interoperate_with_firmforge_usign(tmp_path: Path) -> None:
    secret = SecretKey.from_seed(os.urandom(32), os.urandom(8))
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / secret.public_key.fingerprint_hex).write_text(secret.public_key.to_text())
    message = b"Package: base-files\nVersion: 1\n"
    assert ed25519.usign_verify(message, secret.sign(message), keys)
    assert not ed25519.usign_verify(message + b"x", secret.sign(message), keys)
    # a signature by a key that is not in keys/ does not verify
    other = SecretKey.from_seed(os.urandom(32), os.urandom(8))
    assert not ed25519.usign_verify(message, other.sign(message), keys)
    # and what the IB signs verifies with firmforge.usign
    seed, fingerprint = ed25519.generate_secret_key()
    pub_text = ed25519.usign_public_key_text(seed, fingerprint, "Local build key")
    PublicKey.from_text(pub_text).verify(message, ed25519.usign_sign(message, seed, fingerprint))
    secret_text = ed25519.usign_secret_key_text(seed, fingerprint, "Local build key")
    assert SecretKey.from_text(secret_text).seed == seed
    assert ed25519.read_secret_key(secret_text) == (seed, fingerprint)


# --- versions and dependencies -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.0", "1.0-1"),
        ("1.0~rc1", "1.0"),
        ("1.2.9", "1.2.10"),
        ("1.0", "1.0a"),
        ("1.0a", "1.0+x"),
        ("2.0", "1:0.1"),
        ("2024.03.29~eb9bcb64-r1", "2024.03.29-r1"),
        ("2023-05-23-75a3b870-1", "2024-03-29-eb9bcb64-1"),
        ("5.15.167-1", "5.15.167+6.1.110-1"),
        ("1.0-r1", "1.0-r2"),
    ],
)
def test_opkg_version_order(lower: str, higher: str) -> None:
    assert index.compare_versions(lower, higher) < 0
    assert index.compare_versions(higher, lower) > 0
    assert index.compare_versions(higher, higher) == 0


def test_depends_parse_and_render_like_opkg() -> None:
    parsed = index.parse_depends("libc, kernel (=6.6.1~ab-r1), a (>> 2) | b (<< 3), c(>=1.0)")
    assert [index.render_depends(c) for c in parsed] == [
        "libc",
        "kernel (= 6.6.1~ab-r1)",
        "a (> 2) | b (< 3)",
        "c (>= 1.0)",
    ]
    kernel = parsed[1][0]
    assert kernel.satisfied_by("6.6.1~ab-r1") and not kernel.satisfied_by("6.6.2~ab-r1")
    later = parsed[2][0]
    assert later.satisfied_by("2.1") and not later.satisfied_by("1.9")
    assert later.satisfied_by("2")  # opkg: an equal version satisfies every operator


def test_strip_abi_name() -> None:
    package = index.Package(fields={"Package": "libubox20240329", "ABIVersion": "20240329"})
    assert package.strip_abi_name() == "libubox"
    assert index.Package(fields={"Package": "busybox"}).strip_abi_name() == "busybox"


def test_build_packages_minus_semantics() -> None:
    assert ib_tool._drop_removed(["a", "-b", "b", "c", "-zz"]) == ["a", "c"]


# --- rootfs safety ----------------------------------------------------------------------------


def _data_tar(entries: list[tuple[str, str, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for kind, name, payload in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, payload.decode()
                tar.addfile(info)
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, payload.decode()
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return gzip.compress(raw.getvalue(), mtime=0)


@pytest.mark.parametrize(
    "entries",
    [
        [("file", "../evil", b"x")],
        [("file", "./usr/../../evil", b"x")],
        [("file", "/etc/evil", b"x")],
        [("sym", "./usr/lib/up", b"../../../../etc")],
        [("hard", "./usr/bin/x", b"../../outside")],
    ],
)
def test_extract_refuses_escapes(tmp_path: Path, entries: list[tuple[str, str, bytes]]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(rootfs.UnsafeArchiveError):
        rootfs.extract_data(_data_tar(entries), root)
    assert not (tmp_path / "evil").exists()


def test_absolute_symlinks_resolve_inside_the_rootfs(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "tmp"
    outside.mkdir()
    rootfs.extract_data(_data_tar([("dir", "./tmp/", b""), ("sym", "./var", b"/tmp")]), root)
    installed = rootfs.extract_data(_data_tar([("file", "./var/state", b"data")]), root)
    assert installed == ["/var/state"]
    assert (root / "tmp" / "state").read_bytes() == b"data"
    assert not (outside / "state").exists()
    assert rootfs.resolve_in_root(root, "/var/../../../etc") == root / "etc"


def test_overlay_keeps_symlinks_and_replaces_files(tmp_path: Path) -> None:
    root, files = tmp_path / "root", tmp_path / "files"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "banner").write_text("old")
    (files / "etc").mkdir(parents=True)
    (files / "etc" / "banner").write_text("new")
    (files / "etc" / "link").symlink_to("/etc/banner")
    rootfs.copy_overlay(files, root)
    assert (root / "etc" / "banner").read_text() == "new"
    assert str((root / "etc" / "link").readlink()) == "/etc/banner"


def test_rootfs_tar_is_reproducible(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "b").mkdir(parents=True)
    (root / "b" / "z").write_bytes(b"z" * 5000)
    (root / "a").write_text("a")
    first, blocks = rootfs.rootfs_tar(root, 1700000000)
    os.utime(root / "a", (1, 1))
    second, _ = rootfs.rootfs_tar(root, 1700000000)
    assert first == second
    assert blocks == 1 + 1 + 1 + 2  # top, dir b, file a, file z (two 4 KiB blocks)
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        assert tar.getnames() == [".", "./a", "./b", "./b/z"]
        assert {m.mtime for m in tar.getmembers()} == {1700000000}
        assert {(m.uid, m.gid) for m in tar.getmembers()} == {(0, 0)}


def test_image_prefix_sanitizes_the_extra_name() -> None:
    info = {"dist": "openwrt", "version_number": "23.05.5", "board": "x86", "subtarget": "64"}
    assert image.image_prefix(info, "") == "openwrt-23.05.5-x86-64"
    assert image.image_prefix(info, "My_Build 1") == "openwrt-23.05.5-my-build-1-x86-64"
    assert image.sanitize("A_b C") == "a-b-c"
