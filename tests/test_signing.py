"""``firmforge.signing``: the server's key, re-signing images, ``sha256sums`` and its signature."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from firmforge import fwtool
from firmforge.api import create_app
from firmforge.api._key import FINGERPRINT_HEADER
from firmforge.config import Settings
from firmforge.errors import BuildError
from firmforge.server import make_services
from firmforge.signing import (
    SigningKeyError,
    ensure_key,
    load_key,
    public_key,
    resign_image,
    sign_build,
    strip_signature,
    write_sha256sums,
)
from firmforge.usign import PublicKey, SecretKey

KEY = SecretKey.from_seed(bytes(range(32)), bytes.fromhex("0123456789abcdef"))
IB_KEY = SecretKey.from_seed(bytes(range(1, 33)), bytes.fromhex("fedcba9876543210"))
METADATA = {"metadata_version": "1.1", "supported_devices": ["tplink,archer-c7-v5"]}


def _ib_image(firmware: bytes = b"\x27\x05\x19\x56firmware" * 100) -> tuple[bytes, bytes]:
    """(an image as the ImageBuilder signs it, the same image before its signature chunk)."""
    unsigned = fwtool.append_metadata(firmware, METADATA)
    ucert = b"opaque certificate chain"
    return fwtool.append_signature(unsigned, ucert + IB_KEY.sign(unsigned).encode()), unsigned


# --- the key ---------------------------------------------------------------------------------


def test_first_start_makes_a_private_key_and_later_starts_reuse_it(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "firmforge.sec"
    made = ensure_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_key(path) == made == load_key(path)
    public = PublicKey.from_text((tmp_path / "keys" / "firmforge.pub").read_text())
    assert public == made.public_key == public_key(path)
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "firmforge.sec"
    keys: list[SecretKey] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        keys.append(ensure_key(path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert load_key(path) == keys[0]


def test_a_malformed_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.sec"
    path.write_text("untrusted comment: nothing\nAAAA\n")
    with pytest.raises(SigningKeyError, match=r"bad\.sec"):
        load_key(path)
    assert public_key(tmp_path / "missing.sec") is None


def test_signify_reads_our_key_files(tmp_path: Path, signify: str) -> None:
    """A key made here signs with signify-openbsd, and its signature verifies with ours."""
    path = tmp_path / "firmforge.sec"
    key = ensure_key(path)
    message = tmp_path / "message"
    message.write_bytes(b"hello\n")
    subprocess.run([signify, "-S", "-s", str(path), "-m", str(message)], check=True)
    key.public_key.verify(b"hello\n", (tmp_path / "message.sig").read_text())


# --- images ----------------------------------------------------------------------------------


def test_strip_removes_only_the_signature_chunk() -> None:
    signed, unsigned = _ib_image()
    assert strip_signature(signed) == unsigned
    assert [c.type for c in fwtool.read_chunks(strip_signature(signed))] == [fwtool.TYPE_METADATA]
    assert strip_signature(unsigned) == unsigned  # no signature: nothing to strip
    assert strip_signature(b"plain firmware") == b"plain firmware"


def test_resign_replaces_the_imagebuilder_signature_with_ours() -> None:
    signed, unsigned = _ib_image()
    final, before = resign_image(signed, KEY)
    assert before == unsigned
    chunks = fwtool.read_chunks(final)
    assert [c.type for c in chunks] == [fwtool.TYPE_SIGNATURE, fwtool.TYPE_METADATA]
    assert chunks[1].metadata() == METADATA
    assert final[: chunks[0].offset] == unsigned
    KEY.public_key.verify(unsigned, chunks[0].payload.decode())
    assert resign_image(final, KEY) == (final, unsigned)  # re-signing again changes nothing


def test_an_image_without_trailer_gets_a_signature_chunk() -> None:
    final, before = resign_image(b"gzip stream", KEY)
    assert before == b"gzip stream"
    assert final.startswith(b"gzip stream")
    KEY.public_key.verify(before, fwtool.read_chunks(final)[0].payload.decode())


# --- a whole build ---------------------------------------------------------------------------


def _bin_dir(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    images = []
    for name, kind in (("x-sysupgrade.bin", "sysupgrade"), ("x-factory.bin", "factory"),
                       ("x-kernel.bin", "kernel")):
        signed, unsigned = _ib_image(name.encode() * 50)
        (bin_dir / name).write_bytes(signed)
        images.append({"name": name, "type": kind, "sha256": hashlib.sha256(signed).hexdigest(),
                       "sha256_unsigned": hashlib.sha256(unsigned).hexdigest()})
    profiles = {"target": "ath79/generic", "profiles": {"x": {"images": images}}}
    (bin_dir / "profiles.json").write_text(json.dumps(profiles))
    (bin_dir / "x.manifest").write_text("base-files - 1\n")
    (bin_dir / "sha256sums").write_text("stale\n")
    return bin_dir


def test_sign_build_signs_images_and_sums(tmp_path: Path) -> None:
    bin_dir = _bin_dir(tmp_path)
    kernel_before = (bin_dir / "x-kernel.bin").read_bytes()
    profiles = sign_build(bin_dir, KEY)
    assert json.loads((bin_dir / "profiles.json").read_text()) == profiles
    public = KEY.public_key
    for image in profiles["profiles"]["x"]["images"]:
        data = (bin_dir / image["name"]).read_bytes()
        assert image["sha256"] == hashlib.sha256(data).hexdigest()
        if image["type"] == "kernel":
            assert data == kernel_before
            assert not (bin_dir / f"{image['name']}.sig").exists()
            continue
        public.verify(data, (bin_dir / f"{image['name']}.sig").read_text())
        unsigned = strip_signature(data)
        assert image["sha256_unsigned"] == hashlib.sha256(unsigned).hexdigest()
        assert image["sha256"] != image["sha256_unsigned"]

    sums = (bin_dir / "sha256sums").read_text()
    public.verify(sums.encode(), (bin_dir / "sha256sums.sig").read_text())
    names = [line.split(" *", 1)[1] for line in sums.splitlines()]
    assert names == sorted(names)
    assert set(names) == {p.name for p in bin_dir.iterdir()} - {"sha256sums", "sha256sums.sig"}
    for line in sums.splitlines():
        digest, name = line.split(" *", 1)
        assert hashlib.sha256((bin_dir / name).read_bytes()).hexdigest() == digest


def test_sha256sums_verify_with_signify_and_sha256sum(tmp_path: Path, signify: str) -> None:
    bin_dir = _bin_dir(tmp_path)
    sign_build(bin_dir, KEY)
    pub = tmp_path / "key.pub"
    pub.write_text(KEY.public_key.to_text())
    for name in ("sha256sums", "x-sysupgrade.bin", "x-factory.bin"):
        subprocess.run([signify, "-V", "-q", "-p", str(pub), "-x", str(bin_dir / f"{name}.sig"),
                        "-m", str(bin_dir / name)], check=True)
    subprocess.run(["sha256sum", "-c", "--quiet", "sha256sums"], cwd=bin_dir, check=True)


def test_write_sha256sums_format(tmp_path: Path) -> None:
    (tmp_path / "b").write_bytes(b"b")
    (tmp_path / "B").write_bytes(b"B")
    (tmp_path / "sha256sums.sig").write_text("old")
    text = write_sha256sums(tmp_path, KEY)
    assert text == (f"{hashlib.sha256(b'B').hexdigest()} *B\n"
                    f"{hashlib.sha256(b'b').hexdigest()} *b\n")


def test_a_broken_trailer_fails_the_signing_stage(tmp_path: Path) -> None:
    bin_dir = _bin_dir(tmp_path)
    image = bin_dir / "x-sysupgrade.bin"
    data = bytearray(image.read_bytes())
    data[10] ^= 0xFF  # the trailer's CRC no longer matches
    image.write_bytes(bytes(data))
    with pytest.raises(BuildError) as caught:
        sign_build(bin_dir, KEY)
    assert caught.value.stage == "signing_images"
    assert "x-sysupgrade.bin" in caught.value.detail


# --- the route -------------------------------------------------------------------------------


def test_key_route_serves_the_public_key(tmp_path: Path, redis_url: str) -> None:
    settings = Settings(data_dir=tmp_path, upstream_url="http://127.0.0.1:9", redis_url=redis_url,
                        workers=0)
    with TestClient(create_app(make_services(settings, redis_url))) as client:
        assert client.get("/api/v1/key").status_code == 404
        key = ensure_key(settings.signing_key_path)
        answer = client.get("/api/v1/key")
    assert answer.status_code == 200
    assert answer.headers[FINGERPRINT_HEADER] == key.fingerprint.hex()
    assert PublicKey.from_text(answer.text) == key.public_key
