"""Packing a synthetic ImageBuilder tarball (research §1.1–§1.3).

The archive has one top directory named like the file without its extension, every mtime
clamped to the source date epoch, numeric owners, and is compressed as the era does it
(23.05 ``xz -7e``, 24.10 ``zstd --ultra -20``). Its runtime (``Makefile`` and the host tools in
``staging_dir/host/bin``) comes from ``firmforge/mirror/ib``; ``.targetinfo.json`` carries the
target's metadata for it.
"""

from __future__ import annotations

import io
import json
import lzma
import random
import tarfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import zstandard

from firmforge.mirror._distribution import Device, Release, Target
from firmforge.mirror._packages import BuiltPackage

__all__ = ["ImageBuilderInputs", "imagebuilder_name", "pack_imagebuilder", "repositories_conf"]

OFFICIAL_BASE_URL = "https://downloads.openwrt.org"
_FEEDS = ("luci", "packages", "routing", "telephony")
_HOST_TOOLS = ("fwtool.py",)  # firmforge modules the IB runs as host tools (stdlib only)


def imagebuilder_name(release: Release, target: Target) -> str:
    """``openwrt-imagebuilder-<version>-<board>-<subtarget>.Linux-x86_64.<ext>`` (§1.1)."""
    return (
        f"openwrt-imagebuilder-{release.version}-{target.board}-{target.subtarget}"
        f".Linux-x86_64.tar.{release.ib_compression}"
    )


def repositories_conf(
    release: Release, target: Target, kmods_dir: str | None, base_url: str
) -> str:
    """``repositories.conf`` as the buildbot ships it (§1.3)."""
    root = f"{base_url.rstrip('/')}/releases/{release.version}"
    lines = []
    if release.era == "23.05":
        lines += [
            "## Place your custom repositories here, they must match the architecture and version.",
            "# src/gz %n <repo URL>",
            f"# src custom file:///usr/src/openwrt/bin/{target.board}/packages",
            "",
        ]
    lines += [
        "## Remote package repositories",
        f"src/gz openwrt_core {root}/targets/{target.name}/packages",
        f"src/gz openwrt_base {root}/packages/{target.arch_packages}/base",
    ]
    if kmods_dir:
        lines.append(f"src/gz openwrt_kmods {root}/targets/{target.name}/kmods/{kmods_dir}")
    lines += [
        f"src/gz openwrt_{feed} {root}/packages/{target.arch_packages}/{feed}" for feed in _FEEDS
    ]
    lines += [
        "",
        "## This is the local package repository, do not remove!",
        "src imagebuilder file:packages",
        "",
        "option check_signature",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ImageBuilderInputs:
    release: Release
    target: Target
    devices: tuple[Device, ...]
    default_packages: tuple[str, ...]
    linux_kernel: dict[str, str] | None
    kernel: BuiltPackage
    libc: BuiltPackage
    public_key_text: str
    fingerprint: str
    repositories: str
    seed: int


def _targetinfo(inputs: ImageBuilderInputs) -> dict[str, object]:
    release, target = inputs.release, inputs.target
    return {
        "dist": "openwrt",
        "dist_name": "OpenWrt",
        "version_number": release.version,
        "version_code": release.version_code,
        "source_date_epoch": release.source_date_epoch,
        "version_filenames": True,
        "board": target.board,
        "subtarget": target.subtarget,
        "arch": target.arch,
        "arch_packages": target.arch_packages,
        "libc": "musl",
        "package_manager": "opkg",
        "linux_kernel": inputs.linux_kernel,
        "default_packages": list(inputs.default_packages),
        "rootfs_partsize": target.rootfs_partsize,
        "images_gzip": True,
        "devices": [
            {
                "id": device.id,
                "title": device.title,
                "titles": list(device.titles),
                "packages": list(device.packages),
                "supported_devices": list(device.supported_devices),
                "has_image_metadata": device.has_image_metadata,
                "image_size": device.image_size_kib * 1024 if device.image_size_kib else None,
                "images": [{"filesystem": i.filesystem, "image": i.image} for i in device.images],
                "artifacts": [],
                "kernel_install": device.kernel_install,
                "rootfs_targz": device.rootfs_targz,
            }
            for device in inputs.devices
        ],
    }


def _dot_config(inputs: ImageBuilderInputs) -> str:
    target = inputs.target
    return "".join(
        f"{line}\n"
        for line in (
            f"CONFIG_TARGET_{target.board}=y",
            f"CONFIG_TARGET_{target.board}_{target.subtarget}=y",
            f'CONFIG_TARGET_BOARD="{target.board}"',
            f'CONFIG_TARGET_SUBTARGET="{target.subtarget}"',
            f'CONFIG_TARGET_ARCH_PACKAGES="{target.arch_packages}"',
            f"CONFIG_TARGET_ROOTFS_PARTSIZE={target.rootfs_partsize}",
            "CONFIG_TARGET_IMAGES_GZIP=y",
            "CONFIG_SIGNATURE_CHECK=y",
            "CONFIG_JSON_OVERVIEW_IMAGE_INFO=y",
            "CONFIG_BUILDBOT=y",
            "CONFIG_VERSION_FILENAMES=y",
            "# CONFIG_VERSION_CODE_FILENAMES is not set",
        )
    )


def _version_mk(release: Release) -> str:
    return (
        f"REVISION:={release.version_code}\n"
        f"SOURCE_DATE_EPOCH:={release.source_date_epoch}\n"
        f"VERSION_NUMBER:={release.version}\n"
        "VERSION_DIST:=OpenWrt\n"
    )


def _runtime_files() -> dict[str, tuple[bytes, int]]:
    """The IB's Makefile and host tools: ``ib/`` files plus shared stdlib-only modules."""
    files: dict[str, tuple[bytes, int]] = {}
    runtime = resources.files("firmforge.mirror") / "ib"
    for entry in runtime.iterdir():
        if entry.name == "Makefile":
            files["Makefile"] = (entry.read_bytes(), 0o644)
        elif entry.name == "ib_tool.py":
            files["staging_dir/host/bin/ib-tool"] = (entry.read_bytes(), 0o755)
        elif entry.name.endswith(".py"):
            files[f"staging_dir/host/bin/{entry.name}"] = (entry.read_bytes(), 0o644)
    for module in _HOST_TOOLS:
        source = resources.files("firmforge") / module
        files[f"staging_dir/host/bin/{module}"] = (source.read_bytes(), 0o644)
    return files


def _vmlinux(inputs: ImageBuilderInputs) -> bytes:
    """A kernel blob for the images: compresses a little, like a real vmlinux."""
    rng = random.Random(f"{inputs.seed}:vmlinux:{inputs.release.version}:{inputs.target.name}")
    return rng.randbytes(1024 * 1024) + b"\0" * (512 * 1024)


def _ib_files(inputs: ImageBuilderInputs) -> dict[str, tuple[bytes, int]]:
    release, target = inputs.release, inputs.target
    kernel_dir = (
        f"build_dir/target-{target.arch_packages}_musl/linux-{target.board}_{target.subtarget}"
    )
    files = _runtime_files()
    files.update(
        {
            ".targetinfo.json": (json.dumps(_targetinfo(inputs), indent=1).encode(), 0o644),
            ".config": (_dot_config(inputs).encode(), 0o644),
            "include/version.mk": (_version_mk(release).encode(), 0o644),
            "repositories.conf": (inputs.repositories.encode(), 0o644),
            "packages/README.md": (
                b"Place your own .ipk packages here; the ImageBuilder indexes them on the next "
                b"build.\n",
                0o644,
            ),
            "packages/Packages": (b"", 0o644),
            f"keys/{inputs.fingerprint}": (inputs.public_key_text.encode(), 0o644),
            f"{kernel_dir}/{inputs.kernel.filename}": (inputs.kernel.ipk, 0o644),
            f"{kernel_dir}/{inputs.libc.filename}": (inputs.libc.ipk, 0o644),
            f"{kernel_dir}/vmlinux": (_vmlinux(inputs), 0o644),
            f"target/linux/{target.board}/Makefile": (
                f"BOARD:={target.board}\nSUBTARGETS:={target.subtarget}\n".encode(),
                0o644,
            ),
        }
    )
    return files


def _tar(top: str, files: dict[str, tuple[bytes, int]], mtime: int) -> bytes:
    directories = {top}
    for path in files:
        parts = path.split("/")[:-1]
        directories.update(f"{top}/" + "/".join(parts[: i + 1]) for i in range(len(parts)))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for directory in sorted(directories):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
            tar.addfile(info)
        for path in sorted(files):
            content, mode = files[path]
            info = tarfile.TarInfo(f"{top}/{path}")
            info.size, info.mode, info.mtime = len(content), mode, mtime
            tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


def pack_imagebuilder(inputs: ImageBuilderInputs, destination: Path) -> Path:
    """Write the IB tarball into ``destination`` and return its path."""
    name = imagebuilder_name(inputs.release, inputs.target)
    top = name.rsplit(".tar.", 1)[0]
    raw = _tar(top, _ib_files(inputs), inputs.release.source_date_epoch)
    if inputs.release.ib_compression == "xz":
        packed = lzma.compress(raw, preset=7 | lzma.PRESET_EXTREME)
    else:
        packed = zstandard.ZstdCompressor(level=20).compress(raw)
    path = destination / name
    path.write_bytes(packed)
    return path
