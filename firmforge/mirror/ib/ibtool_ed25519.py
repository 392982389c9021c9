"""Ed25519 (RFC 8032) and usign files in pure Python, for the synthetic ImageBuilder.

The IB's host tools run with whatever ``python3`` the build host has, so nothing outside the
standard library may be imported here. The maths follows RFC 8032 §5.1: twisted Edwards curve
``-x^2 + y^2 = 1 + d x^2 y^2`` over GF(2^255 - 19), extended homogeneous coordinates, and the
cofactorless check ``encode([S]B - [k]A) == R`` that usign, signify and libsodium use.

usign files are two lines, ``untrusted comment: <text>`` and one base64 blob
(research §4.1): public key ``b"Ed" + fingerprint[8] + key[32]``, signature
``b"Ed" + fingerprint[8] + sig[64]``, secret key ``b"Ed" b"BK" + kdfrounds u32 + salt[16] +
checksum[8] + fingerprint[8] + seed[32] + public key[32]``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from pathlib import Path

__all__ = [
    "UsignError",
    "generate_secret_key",
    "public_key",
    "sign",
    "usign_public_key_text",
    "usign_secret_key_text",
    "usign_sign",
    "usign_verify",
    "verify",
]

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z

_IDENTITY: Point = (0, 1, 1, 0)


def _add(p: Point, q: Point) -> Point:
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * _D * t1 * t2 % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _double(p: Point) -> Point:
    x1, y1, z1, _t1 = p
    a = x1 * x1 % _P
    b = y1 * y1 % _P
    c = 2 * z1 * z1 % _P
    h = a + b
    e = h - (x1 + y1) * (x1 + y1)
    g = a - b
    f = c + g
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _multiply(scalar: int, p: Point) -> Point:
    result = _IDENTITY
    addend = p
    while scalar:
        if scalar & 1:
            result = _add(result, addend)
        addend = _double(addend)
        scalar >>= 1
    return result


def _negate(p: Point) -> Point:
    x, y, z, t = p
    return (-x % _P, y, z, -t % _P)


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    if x & 1 != sign:
        x = _P - x
    return x


def _decode_point(data: bytes) -> Point | None:
    if len(data) != 32:
        return None
    value = int.from_bytes(data, "little")
    y = value & ((1 << 255) - 1)
    x = _recover_x(y, value >> 255)
    if x is None:
        return None
    return (x, y, 1, x * y % _P)


def _encode_point(p: Point) -> bytes:
    x, y, z, _t = p
    z_inv = pow(z, _P - 2, _P)
    x, y = x * z_inv % _P, y * z_inv % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


_BASE_Y = 4 * pow(5, _P - 2, _P) % _P
_BASE: Point = (
    _recover_x(_BASE_Y, 0) or 0,
    _BASE_Y,
    1,
    (_recover_x(_BASE_Y, 0) or 0) * _BASE_Y % _P,
)


def _hash_int(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def _expand(seed: bytes) -> tuple[int, bytes]:
    if len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes")
    digest = hashlib.sha512(seed).digest()
    scalar = int.from_bytes(digest[:32], "little")
    scalar &= (1 << 254) - 8
    scalar |= 1 << 254
    return scalar, digest[32:]


def public_key(seed: bytes) -> bytes:
    """The 32-byte public key of a 32-byte seed (RFC 8032 §5.1.5)."""
    scalar, _prefix = _expand(seed)
    return _encode_point(_multiply(scalar, _BASE))


def sign(seed: bytes, message: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``message`` (RFC 8032 §5.1.6)."""
    scalar, prefix = _expand(seed)
    encoded_a = _encode_point(_multiply(scalar, _BASE))
    r = _hash_int(prefix, message) % _L
    encoded_r = _encode_point(_multiply(r, _BASE))
    k = _hash_int(encoded_r, encoded_a, message) % _L
    s = (r + k * scalar) % _L
    return encoded_r + s.to_bytes(32, "little")


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``public``'s signature of ``message`` (RFC 8032 §5.1.7)."""
    if len(public) != 32 or len(signature) != 64:
        return False
    a = _decode_point(public)
    if a is None or _decode_point(signature[:32]) is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= _L:
        return False
    k = _hash_int(signature[:32], public, message) % _L
    check = _add(_multiply(s, _BASE), _multiply(k, _negate(a)))
    return _encode_point(check) == signature[:32]


# --- usign / signify files -------------------------------------------------------------------

_COMMENT = "untrusted comment: "


class UsignError(ValueError):
    """A usign key or signature file is malformed or does not verify."""


def _blob(text: str, size: int, what: str) -> bytes:
    lines = text.splitlines()
    if len(lines) < 2 or not lines[0].startswith(_COMMENT):
        raise UsignError(f"{what}: not a usign file")
    try:
        blob = base64.b64decode(lines[1], validate=True)
    except ValueError as exc:
        raise UsignError(f"{what}: bad base64") from exc
    if len(blob) != size or blob[:2] != b"Ed":
        raise UsignError(f"{what}: not an Ed25519 {what}")
    return blob


def _file(comment: str, blob: bytes) -> str:
    return f"{_COMMENT}{comment}\n{base64.b64encode(blob).decode()}\n"


def usign_verify(message: bytes, signature_text: str, keys_dir: Path) -> bool:
    """``usign -V -P keys_dir``: the key is looked up by the signature's fingerprint."""
    try:
        blob = _blob(signature_text, 74, "signature")
    except UsignError:
        return False
    key_file = keys_dir / blob[2:10].hex()
    if not key_file.is_file():
        return False
    try:
        key = _blob(key_file.read_text(), 42, "public key")
    except (UsignError, UnicodeDecodeError):
        return False
    if key[2:10] != blob[2:10]:
        return False
    return verify(key[10:], message, blob[10:])


def generate_secret_key() -> tuple[bytes, bytes]:
    """A fresh ``(seed, fingerprint)``, as ``usign -G`` makes them (both random)."""
    return os.urandom(32), os.urandom(8)


def usign_secret_key_text(seed: bytes, fingerprint: bytes, comment: str) -> str:
    secret = seed + public_key(seed)
    checksum = hashlib.sha512(secret).digest()[:8]
    blob = struct.pack(
        "!2s2sI16s8s8s64s", b"Ed", b"BK", 0, os.urandom(16), checksum, fingerprint, secret
    )
    return _file(comment, blob)


def usign_public_key_text(seed: bytes, fingerprint: bytes, comment: str) -> str:
    return _file(comment, b"Ed" + fingerprint + public_key(seed))


def read_secret_key(text: str) -> tuple[bytes, bytes]:
    """``(seed, fingerprint)`` from a secret-key file."""
    blob = _blob(text, 104, "secret key")
    _alg, kdf, rounds, _salt, checksum, fingerprint, secret = struct.unpack(
        "!2s2sI16s8s8s64s", blob
    )
    if kdf != b"BK" or rounds != 0 or hashlib.sha512(secret).digest()[:8] != checksum:
        raise UsignError("secret key: unsupported or corrupt")
    return secret[:32], fingerprint


def usign_sign(message: bytes, seed: bytes, fingerprint: bytes) -> str:
    """The text of a ``.sig`` file, as ``usign -S`` writes it."""
    return _file(f"signed by key {fingerprint.hex()}", b"Ed" + fingerprint + sign(seed, message))
