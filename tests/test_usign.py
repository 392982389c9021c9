"""usign/signify keys and signatures, checked against Debian's signify-openbsd both ways."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from firmforge.usign import PublicKey, SecretKey, UsignError, verify

SECRET = SecretKey.from_seed(bytes(range(32)), bytes.fromhex("0123456789abcdef"))


def test_key_files_have_the_usign_layout() -> None:
    public = SECRET.public_key.to_text()
    comment, blob = public.splitlines()
    assert comment == "untrusted comment: public key 0123456789abcdef"
    assert len(blob) == 56 and blob.startswith("RW")
    assert len(SECRET.to_text().splitlines()[1]) == 140
    assert len(SECRET.sign(b"x").splitlines()[1]) == 100
    assert SecretKey.from_text(SECRET.to_text()) == SECRET
    assert PublicKey.from_text(public) == SECRET.public_key


def test_sign_and_verify_roundtrip() -> None:
    signature = SECRET.sign(b"message")
    verify(b"message", signature, SECRET.public_key.to_text())
    with pytest.raises(UsignError, match="does not match"):
        verify(b"messagE", signature, SECRET.public_key.to_text())


def test_signature_from_another_key_is_refused_by_fingerprint() -> None:
    other = SecretKey.from_seed(bytes(32), bytes(8))
    with pytest.raises(UsignError, match="made by key 0000000000000000"):
        SECRET.public_key.verify(b"m", other.sign(b"m"))


@pytest.mark.parametrize(
    "text",
    ["", "no comment\nRWQ=\n", "untrusted comment: x\n!!!notbase64\n",
     "untrusted comment: x\nAAAA\n"],
)
def test_malformed_files_are_refused(text: str) -> None:
    with pytest.raises(UsignError):
        PublicKey.from_text(text)


def test_signify_verifies_our_signature(signify: str, tmp_path: Path) -> None:
    (tmp_path / "key.pub").write_text(SECRET.public_key.to_text())
    (tmp_path / "msg").write_bytes(b"hello mirror\n")
    (tmp_path / "msg.sig").write_text(SECRET.sign(b"hello mirror\n"))
    result = subprocess.run(
        [signify, "-V", "-p", str(tmp_path / "key.pub"), "-m", str(tmp_path / "msg")],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_we_verify_signify_keys_and_signatures(signify: str, tmp_path: Path) -> None:
    subprocess.run([signify, "-G", "-n", "-p", str(tmp_path / "k.pub"), "-s",
                    str(tmp_path / "k.sec")], check=True)
    (tmp_path / "msg").write_bytes(b"signed by signify")
    subprocess.run([signify, "-S", "-s", str(tmp_path / "k.sec"), "-m", str(tmp_path / "msg")],
                   check=True)
    verify(b"signed by signify", (tmp_path / "msg.sig").read_text(),
           (tmp_path / "k.pub").read_text())
    secret = SecretKey.from_text((tmp_path / "k.sec").read_text())
    assert secret.sign(b"signed by signify").splitlines()[1] == (
        (tmp_path / "msg.sig").read_text().splitlines()[1])  # Ed25519 is deterministic
