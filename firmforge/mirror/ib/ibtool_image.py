"""Images, ``profiles.json``, ``sha256sums`` and the manifest of a synthetic IB build.

An image is a small header, the target's ``vmlinux`` and the rootfs: a reproducible tar of the
staging directory, xz-compressed for squashfs, raw for ext4 (research §1.7–§1.10). Names follow
``include/image.mk``; ``.gz`` images are gzip'd in the recipe (``-9n``); sysupgrade images of
devices with image metadata, and x86 ``combined*`` images, get the fwtool trailer: a metadata
chunk when the device has ``SUPPORTED_DEVICES``, then the signature chunk made with the IB's
local build key (research §4.7). Everything is byte-for-byte reproducible for the same inputs
and the same local key. Standard library only.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import shutil
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import fwtool
import ibtool_ed25519
import ibtool_rootfs

__all__ = [
    "BuildError",
    "ImageBuild",
    "SigningKey",
    "image_prefix",
    "sanitize",
    "write_profiles_json",
    "write_sha256sums",
]

_HEADER = struct.Struct(">8sIIII32s64s")
_MAGIC = b"FFIB\x00img"
_FILESYSTEM_CODES = {"squashfs": 1, "ext4": 2}
_SIZE_CHECKED = ("sysupgrade", "factory")
_COMBINED = ("combined", "combined-efi")


class BuildError(RuntimeError):
    """The image recipe failed (the message is printed to stderr as is)."""


def sanitize(text: str) -> str:
    """``include/image.mk`` ``sanitize``: lower case, space and ``_`` become ``-``."""
    return text.replace(" ", "-").replace("_", "-").lower()


def image_prefix(info: dict[str, Any], extra: str) -> str:
    """``<dist>-[<version>-][<extra>-]<board>-<subtarget>``."""
    parts = [sanitize(info["dist"])]
    if info.get("version_filenames", True):
        parts.append(sanitize(info["version_number"]))
    if extra.strip():
        parts.append(sanitize(extra.strip()))
    parts += [info["board"], info["subtarget"]]
    return "-".join(parts)


@dataclass(frozen=True)
class SigningKey:
    seed: bytes
    fingerprint: bytes
    ucert: bytes


@dataclass
class ImageBuild:
    info: dict[str, Any]
    device: dict[str, Any]
    rootfs: Path
    kernel_dir: Path
    bin_dir: Path
    extra_name: str
    partsize_mib: int
    key: SigningKey | None

    @property
    def prefix(self) -> str:
        return image_prefix(self.info, self.extra_name)

    def _metadata(self) -> dict[str, Any]:
        info = self.info
        return {
            "metadata_version": "1.1",
            "compat_version": "1.0",
            "supported_devices": list(self.device["supported_devices"]),
            "version": {
                "dist": info.get("dist_name", "OpenWrt"),
                "version": info["version_number"],
                "revision": info["version_code"],
                "target": f"{info['board']}/{info['subtarget']}",
                "board": self.device["id"],
            },
        }

    def _append_metadata(self, image: bytes) -> tuple[bytes, str]:
        """``Build/append-metadata``: (final bytes, sha256 before the signature chunk)."""
        if self.device["supported_devices"]:
            image = fwtool.append_metadata(image, self._metadata())
        unsigned = hashlib.sha256(image).hexdigest()
        if self.key is not None:
            signature = ibtool_ed25519.usign_sign(image, self.key.seed, self.key.fingerprint)
            image = fwtool.append_signature(image, self.key.ucert + signature.encode())
        return image, unsigned

    def _filesystem(self, name: str, tar: bytes, blocks: int) -> bytes:
        if name == "ext4":
            capacity = self.partsize_mib * 256 * 95 // 100
            if blocks > capacity:
                raise BuildError(
                    "error: ext4_allocate_best_fit_partial: failed to allocate "
                    f"{blocks - capacity} blocks, out of space?"
                )
            return tar
        return lzma.compress(tar, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, preset=6)

    def _compose(self, kind: str, filesystem: str, kernel: bytes, payload: bytes) -> bytes:
        if kind == "rootfs":
            return payload
        header = _HEADER.pack(
            _MAGIC,
            len(kernel),
            len(payload),
            self.partsize_mib,
            _FILESYSTEM_CODES.get(filesystem, 0),
            kind.encode()[:32],
            self.device["id"].encode()[:64],
        )
        return header + kernel + payload

    def build(self, out: TextIO) -> list[dict[str, str]]:
        """Write the device's images into ``bin_dir``; return their ``profiles.json`` entries."""
        device = self.device
        device_prefix = f"{self.prefix}-{device['id']}"
        tmp = self.kernel_dir / "tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        tar, blocks = ibtool_rootfs.rootfs_tar(self.rootfs, int(self.info["source_date_epoch"]))
        kernel = (self.kernel_dir / "vmlinux").read_bytes()
        payloads: dict[str, bytes] = {}
        for spec in device["images"]:
            if spec["filesystem"] not in payloads:
                out.write(f"Creating {spec['filesystem']} filesystem image...\n")
                payloads[spec["filesystem"]] = self._filesystem(spec["filesystem"], tar, blocks)
        entries: list[dict[str, str]] = []
        limit = device.get("image_size")
        for spec in device["images"]:
            filesystem, image_name = spec["filesystem"], spec["image"]
            kind = image_name.split(".", 1)[0]
            name = f"{device_prefix}-{filesystem}-{image_name}"
            body = self._compose(kind, filesystem, kernel, payloads[filesystem])
            if (
                filesystem == "ext4"
                and self.info.get("images_gzip")
                and not name.endswith((".gz", "dtb"))
            ):
                name += ".gz"
            if name.endswith(".gz"):
                body = gzip.compress(body, compresslevel=9, mtime=0)
            path = tmp / name
            if limit and kind in _SIZE_CHECKED and len(body) > limit:
                sys.stdout.flush()
                sys.stderr.write(
                    f"    WARNING: Image file {path} is too big: {len(body)} > {limit}\n"
                )
                continue
            unsigned = hashlib.sha256(body).hexdigest()
            if (kind == "sysupgrade" and device.get("has_image_metadata")) or kind in _COMBINED:
                body, unsigned = self._append_metadata(body)
            path.write_bytes(body)
            shutil.copyfile(path, self.bin_dir / name)
            entries.append(
                {
                    "filesystem": filesystem,
                    "name": name,
                    "sha256": hashlib.sha256(body).hexdigest(),
                    "sha256_unsigned": unsigned,
                    "type": kind,
                }
            )
        first_payload = next(iter(payloads.values()), b"")
        for artifact in device.get("artifacts", []):
            name = f"{device_prefix}-{artifact}"
            body = self._compose(artifact, "", kernel, first_payload)
            (self.bin_dir / name).write_bytes(body)
            digest = hashlib.sha256(body).hexdigest()
            entries.append(
                {"name": name, "sha256": digest, "sha256_unsigned": digest, "type": artifact}
            )
        if device.get("kernel_install"):
            (self.bin_dir / f"{device_prefix}-kernel.bin").write_bytes(kernel)
        if device.get("rootfs_targz"):
            (self.bin_dir / f"{device_prefix}-rootfs.tar.gz").write_bytes(
                gzip.compress(tar, compresslevel=6, mtime=0)
            )
        return entries


def write_profiles_json(
    bin_dir: Path,
    info: dict[str, Any],
    device: dict[str, Any],
    prefix: str,
    images: list[dict[str, str]],
) -> bool:
    """Merge this build's profile into ``profiles.json`` (research §1.8). False if there was
    nothing to write (every image was dropped and no earlier file exists)."""
    path = bin_dir / "profiles.json"
    previous: dict[str, Any] | None = None
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            previous = None
        if not isinstance(previous, dict) or previous.get("version_code") != info["version_code"]:
            previous = None
    if not images and previous is None:
        return False
    document: dict[str, Any] = {
        "arch_packages": info["arch_packages"],
        "default_packages": sorted(set(info["default_packages"])),
        "metadata_version": 1,
        "profiles": dict(previous.get("profiles", {})) if previous else {},
        "source_date_epoch": int(info["source_date_epoch"]),
        "target": f"{info['board']}/{info['subtarget']}",
        "version_code": info["version_code"],
        "version_number": info["version_number"],
    }
    if info.get("linux_kernel"):
        document["linux_kernel"] = info["linux_kernel"]
    if images:
        merged = {
            i["name"]: i for i in document["profiles"].get(device["id"], {}).get("images", [])
        }
        merged.update((i["name"], i) for i in images)
        document["profiles"][device["id"]] = {
            "device_packages": list(device["packages"]),
            "image_prefix": f"{prefix}-{device['id']}",
            "images": list(merged.values()),
            "supported_devices": list(device["supported_devices"]),
            "titles": list(device["titles"]),
        }
    path.write_text(json.dumps(document, sort_keys=True, separators=(",", ":")))
    return True


def write_sha256sums(bin_dir: Path) -> None:
    """``<hex> *<name>`` for every regular file of ``bin_dir`` (not recursive), C-sorted."""
    names = sorted(
        (
            p.name
            for p in bin_dir.iterdir()
            if p.is_file() and not p.is_symlink() and p.name != "sha256sums"
        ),
        key=lambda n: n.encode(),
    )
    lines = []
    for name in names:
        digest = hashlib.sha256((bin_dir / name).read_bytes()).hexdigest()
        lines.append(f"{digest} *{name}\n")
    (bin_dir / "sha256sums").write_text("".join(lines))
