"""The server's own usign key, and signing a build with it before it is published.

The key is an Ed25519 key in usign/signify format (``firmforge.usign``), made on the first
start under the data dir or configured (``Settings.signing_key``). A build is signed as
upstream ASU re-signs (research/imagebuilder-formats.md §4.7, asu-upstream.md §1.4): for every
image of a flashable type the ImageBuilder's signature chunk is stripped (``fwtool -t -s``; the
metadata chunk stays) and a new one appended whose blob is the usign signature of the image;
then each such image gets a detached ``<image>.sig`` over its final bytes, ``profiles.json``
describes the published bytes, and ``sha256sums`` is written anew and signed as
``sha256sums.sig`` (the buildbot's ``signall.sh``).

The key never leaves the server: local workers read it from the data dir. Remote workers
(a later issue) must ask the server to sign, or the server signs on upload.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from firmforge import fwtool
from firmforge.errors import BuildError
from firmforge.usign import PublicKey, SecretKey, UsignError

__all__ = [
    "SIGNED_IMAGE_TYPES",
    "SigningKeyError",
    "ensure_key",
    "load_key",
    "public_key",
    "resign_image",
    "sign_build",
    "strip_signature",
    "write_sha256sums",
]

log = logging.getLogger(__name__)

SIGNED_IMAGE_TYPES = frozenset({"sysupgrade", "factory", "combined", "combined-efi", "sdcard"})
"""Image types upstream re-signs (``asu/build.py``); kernels, rootfs and initramfs are not."""

SUMS = "sha256sums"
SUMS_SIG = "sha256sums.sig"


class SigningKeyError(RuntimeError):
    """The configured signing key is missing, unreadable or malformed."""


def load_key(path: Path) -> SecretKey:
    """The secret key stored at ``path`` (raises ``FileNotFoundError`` if there is none)."""
    text = path.read_text()
    try:
        key = SecretKey.from_text(text)
    except UsignError as exc:
        raise SigningKeyError(f"signing key {path}: {exc}") from exc
    if path.stat().st_mode & 0o077:
        log.warning("signing key %s is readable by others; chmod 600 it", path)
    return key


def ensure_key(path: Path) -> SecretKey:
    """The key at ``path``, made first if there is none.

    Created atomically: the key is written to a private (0600) temporary file which is then
    hard-linked into place, so a concurrent start either wins or reads the winner's key, and
    nobody ever reads half a key. The public key is written next to it as ``<stem>.pub``.
    """
    try:
        key = load_key(path)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fresh = SecretKey.from_seed(os.urandom(32), os.urandom(8), os.urandom(16))
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
        temporary = Path(name)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(fresh.to_text())
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, path)
                log.info("made signing key %s (%s)", path, fresh.fingerprint.hex())
            except FileExistsError:  # another start made it first: use that one
                pass
        finally:
            temporary.unlink()
        key = load_key(path)
    _write_public(path.with_suffix(".pub"), key.public_key)
    return key


def _write_public(path: Path, public: PublicKey) -> None:
    text = public.to_text()
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    temporary = Path(name)
    temporary.chmod(0o644)
    temporary.replace(path)


_PUBLIC: dict[tuple[str, int, int], PublicKey] = {}


def public_key(path: Path) -> PublicKey | None:
    """The public half of the key at ``path`` (None if there is no key), read once per file
    version; for the API, which shows it but never signs."""
    try:
        stat = path.stat()
    except OSError:
        return None
    cache_key = (str(path), stat.st_ino, stat.st_mtime_ns)
    if cache_key not in _PUBLIC:
        _PUBLIC.clear()
        _PUBLIC[cache_key] = load_key(path).public_key
    return _PUBLIC[cache_key]


def strip_signature(image: bytes) -> bytes:
    """``fwtool -t -s``: the image without its outermost signature chunk; metadata stays."""
    chunks = fwtool.read_chunks(image)
    if chunks and chunks[0].type == fwtool.TYPE_SIGNATURE:
        return image[: chunks[0].offset]
    return image


def resign_image(image: bytes, key: SecretKey) -> tuple[bytes, bytes]:
    """(signed image, image before the signature chunk) with the signature chunk replaced.

    Upstream appends ``ucert -A`` of its key's certificate and the ``.sig``; we hold no
    certificate chain, so the chunk's blob is the text of the usign signature itself.
    """
    unsigned = strip_signature(image)
    signature = key.sign(unsigned).encode()
    return fwtool.append_signature(unsigned, signature), unsigned


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_sha256sums(
    directory: Path, key: SecretKey, known: dict[str, str] | None = None
) -> str:
    """``sha256sums`` over every regular file of ``directory`` (``<hex> *<name>``, sorted
    bytewise as ``LC_ALL=C``), and ``sha256sums.sig``; returns the sums text.

    ``known`` holds digests just computed for files written in this process (the signed
    images), so those large files are not read and hashed a second time.
    """
    known = known or {}
    names = sorted(
        (p.name for p in directory.iterdir()
         if p.is_file() and not p.is_symlink() and p.name not in (SUMS, SUMS_SIG)),
        key=lambda name: name.encode(),
    )
    text = "".join(
        f"{known.get(name) or _sha256((directory / name).read_bytes())} *{name}\n"
        for name in names
    )
    (directory / SUMS).write_text(text)
    (directory / SUMS_SIG).write_text(key.sign(text.encode()))
    return text


def sign_build(bin_dir: Path, key: SecretKey) -> dict[str, Any]:
    """Sign the ImageBuilder's output in ``bin_dir`` in place; return its ``profiles.json``
    with each image's ``sha256``/``sha256_unsigned`` describing the bytes now on disk."""
    profiles_path = bin_dir / "profiles.json"
    profiles: dict[str, Any] = json.loads(profiles_path.read_text())
    signed: dict[str, tuple[str, str]] = {}  # name → (sha256, sha256_unsigned)
    for profile in profiles.get("profiles", {}).values():
        for image in profile.get("images", []):
            name = image.get("name", "")
            path = bin_dir / name
            if image.get("type") not in SIGNED_IMAGE_TYPES or Path(name).name != name:
                continue
            if name not in signed and path.is_file():
                try:
                    final, unsigned = resign_image(path.read_bytes(), key)
                except fwtool.FwtoolError as exc:
                    raise BuildError(f"Could not sign {name}: {exc}",
                                     stage="signing_images") from exc
                path.write_bytes(final)
                (bin_dir / f"{name}.sig").write_text(key.sign(final))
                signed[name] = (_sha256(final), _sha256(unsigned))
            if name in signed:
                image["sha256"], image["sha256_unsigned"] = signed[name]
    profiles_path.write_text(json.dumps(profiles, sort_keys=True, separators=(",", ":")))
    write_sha256sums(bin_dir, key, {name: digests[0] for name, digests in signed.items()})
    return profiles
