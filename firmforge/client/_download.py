"""Fetching a built image: resumable, checked twice, and never left half-verified.

    image = choose_image(build["images"], image_type=None, filesystem="squashfs", efi=False)
    done = download_image(api, build["bin_dir"], image, Path("."), progress=...)
    done.path, done.signature   # ./openwrt-…-sysupgrade.bin, "verified"

The bytes go to ``<name>.part``; a ``.part`` left by an interrupted run is resumed with a
``Range`` request. The file is renamed into place only after its SHA256 equals the build's
``images[].sha256`` and its detached ``<name>.sig`` verifies with the server's usign key
(``GET /api/v1/key``, or a key file the user pinned). A file that fails either check is
deleted. A server without ``/api/v1/key`` (upstream ASU) gets the SHA256 check only, and the
result says the signature was skipped.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from firmforge.client._api import Api
from firmforge.client._errors import ServerError, UsageError, VerificationError
from firmforge.usign import PublicKey, UsignError

__all__ = ["DownloadProgress", "Downloaded", "choose_image", "download_image", "safe_name"]

SIGNED_TYPES = frozenset({"sysupgrade", "factory", "combined", "combined-efi", "sdcard"})
"""Image types a firmforge server signs (``firmforge.signing.SIGNED_IMAGE_TYPES``)."""

_CHUNK = 1 << 16
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,250}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

Signature = Literal["verified", "skipped", "unsigned"]


class DownloadProgress(Protocol):
    def start(self, name: str, total: int | None, offset: int) -> None: ...

    def advance(self, size: int) -> None: ...

    def finish(self) -> None: ...


@dataclass(frozen=True)
class Downloaded:
    path: Path
    name: str
    type: str
    size: int
    sha256: str
    resumed_from: int
    signature: Signature
    key_fingerprint: str | None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "name": self.name, "type": self.type,
                "size": self.size, "sha256": self.sha256, "resumed_from": self.resumed_from,
                "signature": self.signature, "key_fingerprint": self.key_fingerprint,
                "note": self.note}


def safe_name(name: object, what: str = "image name") -> str:
    """A server-given file name we may use locally and on the device: no paths, no options."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise ServerError(f"the server sent an unusable {what}: {name!r}")
    return name


def choose_image(images: object, *, image_type: str | None, filesystem: str | None,
                 efi: bool) -> dict[str, Any]:
    """The image to fetch: ``image_type`` if given, else what sysupgrade takes on the device
    (``sysupgrade``, then ``combined-efi``/``combined``, then ``sdcard``), on its filesystem."""
    if not isinstance(images, list) or not images:
        raise ServerError("the build lists no images")
    usable = [i for i in images if isinstance(i, Mapping) and i.get("name") and i.get("type")]
    if filesystem and any(i.get("filesystem") == filesystem for i in usable):
        usable = [i for i in usable if i.get("filesystem") in (filesystem, None)]
    elif any(i.get("filesystem") == "squashfs" for i in usable):
        usable = [i for i in usable if i.get("filesystem") in ("squashfs", None)]
    combined = ["combined-efi", "combined"] if efi else ["combined", "combined-efi"]
    order: Sequence[str] = [image_type] if image_type else ["sysupgrade", *combined, "sdcard"]
    for wanted in order:
        for image in usable:
            if image.get("type") == wanted:
                return dict(image)
    kinds = sorted({str(i.get("type")) for i in usable})
    if image_type:
        raise UsageError(f"the build has no {image_type!r} image; it has: {', '.join(kinds)}")
    raise ServerError(f"the build has no sysupgrade image; it has: {', '.join(kinds)}")


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _fetch(api: Api, bin_dir: str, name: str, part: Path, progress: DownloadProgress) -> int:
    """Write the file into ``part``, resuming from its size; returns the resume offset."""
    offset = part.stat().st_size if part.exists() else 0
    with api.stream_store(bin_dir, name, offset) as response:
        status = response.status_code
        if status == 416 and offset:
            return offset  # the part is complete already (or too long): the checksum decides
        if status == 404:
            raise VerificationError(f"the server's store has no {name} (the build may have "
                                    "expired; build it again)")
        if status not in (200, 206):
            raise VerificationError(f"downloading {name}: HTTP {status} from {api.base_url}")
        if status == 206 and not response.headers.get("content-range", "").startswith(
                f"bytes {offset}-"):
            raise VerificationError(f"downloading {name}: the server sent another range "
                                    f"({response.headers.get('content-range')!r})")
        if status == 200:
            offset = 0  # the server ignored Range (or there was none): start over
        length = response.headers.get("content-length")
        expected = int(length) if length and length.isdigit() else None
        progress.start(name, (offset + expected) if expected is not None else None, offset)
        received = 0
        with part.open("ab" if offset else "wb") as handle:
            for chunk in response.iter_bytes(_CHUNK):
                handle.write(chunk)
                received += len(chunk)
                progress.advance(len(chunk))
            handle.flush()
            os.fsync(handle.fileno())
        progress.finish()
    if expected is not None and received != expected:
        raise VerificationError(f"downloading {name}: got {received} of {expected} bytes",
                                hint="run the same command again to resume")
    return offset


def _verify_signature(api: Api, bin_dir: str, image: Mapping[str, Any], data: bytes,
                      pinned: PublicKey | None) -> tuple[Signature, str | None, str | None]:
    name = str(image["name"])
    key = pinned
    if key is None:
        text = api.public_key()
        if text is None:
            return ("skipped", None, "the server publishes no signing key (/api/v1/key, "
                    "firmforge only): signature verification was skipped")
        try:
            key = PublicKey.from_text(text)
        except UsignError as exc:
            raise VerificationError(f"the server's signing key is malformed: {exc}") from exc
    signature = api.store_text(bin_dir, f"{name}.sig")
    if signature is None:
        if image.get("type") in SIGNED_TYPES:
            raise VerificationError(f"the server has a signing key but no {name}.sig")
        return ("unsigned", key.fingerprint_hex,
                f"{image.get('type')} images are not signed; only the SHA256 was checked")
    try:
        key.verify(data, signature)
    except UsignError as exc:
        raise VerificationError(f"{name}: bad signature: {exc}") from exc
    return "verified", key.fingerprint_hex, None


def download_image(
    api: Api,
    bin_dir: str,
    image: Mapping[str, Any],
    out_dir: Path,
    *,
    progress: DownloadProgress,
    pinned_key: PublicKey | None = None,
) -> Downloaded:
    """Download, verify (SHA256, then signature) and rename into ``out_dir``."""
    bin_dir = safe_name(bin_dir, "build directory")
    name = safe_name(image.get("name"))
    expected = str(image.get("sha256") or "").lower()
    if not _SHA256.fullmatch(expected):
        raise ServerError(f"the build gives no usable sha256 for {name}")
    final, part = out_dir / name, out_dir / f"{name}.part"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        offset, already = 0, final.is_file() and _sha256(final) == expected
        if already:
            part = final  # downloaded before: check its signature again, fetch nothing
        else:
            offset = _fetch(api, bin_dir, name, part, progress)
        digest = _sha256(part)
        if digest != expected:
            part.unlink(missing_ok=True)
            raise VerificationError(
                f"{name} is corrupted: SHA256 {digest}, the build says {expected}; "
                "the file was deleted",
                hint="run the command again to download it anew")
        data = part.read_bytes()
        try:
            signature, fingerprint, note = _verify_signature(api, bin_dir, image, data,
                                                             pinned_key)
        except VerificationError:
            part.unlink(missing_ok=True)
            raise
        if part != final:
            part.replace(final)
    except OSError as exc:
        raise VerificationError(f"cannot write {out_dir}: {exc.strerror or exc}") from exc
    return Downloaded(path=final, name=name, type=str(image.get("type")), size=len(data),
                      sha256=digest, resumed_from=offset, signature=signature,
                      key_fingerprint=fingerprint,
                      note=note or ("already downloaded" if already else None))
