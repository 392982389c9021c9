"""usign / signify keys and signatures (the format OpenWrt signs its mirror with).

Every file is two lines, ``untrusted comment: <text>`` and one base64 blob:

- public key: ``b"Ed"`` + fingerprint[8] + Ed25519 public key[32]
- signature:  ``b"Ed"`` + fingerprint[8] + Ed25519 signature[64]
- secret key: ``b"Ed" b"BK"`` + kdfrounds u32 (0) + salt[16] + checksum[8] + fingerprint[8]
  + seed[32] + public key[32]

The fingerprint is random at key generation, not derived from the key. Signatures are plain
Ed25519 over the whole message, so they verify with ``usign -V`` and ``signify-openbsd -V``.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "PublicKey",
    "SecretKey",
    "UsignError",
    "read_public_key",
    "verify",
]

_ALGORITHM = b"Ed"
_COMMENT_PREFIX = "untrusted comment: "


class UsignError(ValueError):
    """A key or signature file is malformed, or a signature does not verify."""


def _encode(comment: str, blob: bytes) -> str:
    return f"{_COMMENT_PREFIX}{comment}\n{base64.b64encode(blob).decode()}\n"


def _decode(text: str, size: int, what: str) -> bytes:
    lines = text.splitlines()
    if len(lines) < 2 or not lines[0].startswith(_COMMENT_PREFIX):
        raise UsignError(f"{what}: expected an 'untrusted comment:' line and a base64 line")
    try:
        blob = base64.b64decode(lines[1], validate=True)
    except ValueError as exc:
        raise UsignError(f"{what}: the second line is not base64") from exc
    if len(blob) != size or blob[:2] != _ALGORITHM:
        raise UsignError(f"{what}: not an Ed25519 usign/signify {what}")
    return blob


@dataclass(frozen=True)
class PublicKey:
    fingerprint: bytes
    key: bytes

    @property
    def fingerprint_hex(self) -> str:
        """16 lower-case hex digits, the name opkg stores the key under in ``keys/``."""
        return self.fingerprint.hex()

    def to_text(self, comment: str | None = None) -> str:
        comment = comment or f"public key {self.fingerprint_hex}"
        return _encode(comment, _ALGORITHM + self.fingerprint + self.key)

    @classmethod
    def from_text(cls, text: str) -> PublicKey:
        blob = _decode(text, 42, "public key")
        return cls(fingerprint=blob[2:10], key=blob[10:])

    def verify(self, message: bytes, signature_text: str) -> None:
        """Raise ``UsignError`` unless ``signature_text`` is this key's signature of ``message``."""
        blob = _decode(signature_text, 74, "signature")
        if blob[2:10] != self.fingerprint:
            raise UsignError(
                f"signature was made by key {blob[2:10].hex()}, not by {self.fingerprint_hex}"
            )
        try:
            Ed25519PublicKey.from_public_bytes(self.key).verify(blob[10:], message)
        except InvalidSignature as exc:
            raise UsignError("signature does not match the signed data") from exc


@dataclass(frozen=True)
class SecretKey:
    fingerprint: bytes
    seed: bytes
    salt: bytes = bytes(16)

    @classmethod
    def from_seed(cls, seed: bytes, fingerprint: bytes, salt: bytes = bytes(16)) -> SecretKey:
        """A key from given bytes: deterministic fixtures pass seeded randomness here."""
        if len(seed) != 32 or len(fingerprint) != 8 or len(salt) != 16:
            raise UsignError("a secret key needs a 32-byte seed and an 8-byte fingerprint")
        return cls(fingerprint=fingerprint, seed=seed, salt=salt)

    @property
    def public_key(self) -> PublicKey:
        raw = (
            Ed25519PrivateKey.from_private_bytes(self.seed)
            .public_key()
            .public_bytes(Encoding.Raw, PublicFormat.Raw)
        )
        return PublicKey(fingerprint=self.fingerprint, key=raw)

    def sign(self, message: bytes, comment: str | None = None) -> str:
        """The text of a ``.sig`` file for ``message``."""
        signature = Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)
        comment = comment or f"signed by key {self.fingerprint.hex()}"
        return _encode(comment, _ALGORITHM + self.fingerprint + signature)

    def to_text(self, comment: str | None = None) -> str:
        secret = self.seed + self.public_key.key
        checksum = hashlib.sha512(secret).digest()[:8]
        blob = struct.pack(
            "!2s2sI16s8s8s64s", _ALGORITHM, b"BK", 0, self.salt, checksum, self.fingerprint, secret
        )
        return _encode(comment or f"private key {self.fingerprint.hex()}", blob)

    @classmethod
    def from_text(cls, text: str) -> SecretKey:
        blob = _decode(text, 104, "secret key")
        _alg, kdf, rounds, salt, checksum, fingerprint, secret = struct.unpack(
            "!2s2sI16s8s8s64s", blob
        )
        if kdf != b"BK" or rounds != 0:
            raise UsignError("secret key: password-protected keys are not supported")
        if hashlib.sha512(secret).digest()[:8] != checksum:
            raise UsignError("secret key: checksum mismatch")
        return cls(fingerprint=fingerprint, seed=secret[:32], salt=salt)


def read_public_key(path: Path) -> PublicKey:
    return PublicKey.from_text(path.read_text())


def verify(message: bytes, signature_text: str, public_key_text: str) -> None:
    """Raise ``UsignError`` unless the signature verifies with the given public key file text."""
    PublicKey.from_text(public_key_text).verify(message, signature_text)
