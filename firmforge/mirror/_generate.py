"""Generating the whole synthetic mirror tree (research §2): deterministic for a given seed."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from firmforge import fwtool
from firmforge.mirror._distribution import (
    BASE_DEFAULT_PACKAGES,
    DEVICES,
    PACKAGES,
    RELEASES,
    TARGETS,
    Device,
    PackageSpec,
    Release,
    Target,
)
from firmforge.mirror._feed import write_feed
from firmforge.mirror._imagebuilder import (
    OFFICIAL_BASE_URL,
    ImageBuilderInputs,
    pack_imagebuilder,
    repositories_conf,
)
from firmforge.mirror._packages import (
    BuiltPackage,
    build_kernel,
    build_libc,
    build_package,
    vermagic,
)
from firmforge.usign import SecretKey

__all__ = ["GeneratedMirror", "MirrorError", "generate_mirror", "mirror_key", "seeded_key"]

ARCH_FEEDS = ("base", "luci", "packages", "routing", "telephony")
Progress = Callable[[str], None]


class MirrorError(RuntimeError):
    """The output directory cannot hold a mirror (not empty and not a previous mirror)."""


@dataclass(frozen=True)
class GeneratedMirror:
    root: Path
    public_key: Path
    fingerprint: str
    versions: tuple[str, ...]
    steps: int


def seeded_key(seed: int, purpose: str) -> SecretKey:
    """A usign key derived from the seed and what it signs, so every tree is reproducible."""
    rng = random.Random(f"{seed}:{purpose}")
    return SecretKey.from_seed(rng.randbytes(32), rng.randbytes(8), salt=rng.randbytes(16))


def mirror_key(seed: int) -> SecretKey:
    """The mirror's usign key."""
    return seeded_key(seed, "usign-key")


def generation_steps() -> int:
    """How many progress steps ``generate_mirror`` reports (one per arch and per target)."""
    arches = {t.arch_packages for t in TARGETS}
    return len(RELEASES) * (len(arches) + len(TARGETS))


def _write_signed_sha256sums(directory: Path, key: SecretKey) -> None:
    """Recursive ``sha256sums`` (``<hex> *<path>``, C-sorted) and its usign signature (§1.10)."""
    lines = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if relative in ("sha256sums", "sha256sums.sig"):
            continue
        lines.append((relative, hashlib.sha256(path.read_bytes()).hexdigest()))
    text = "".join(f"{digest} *{relative}\n" for relative, digest in sorted(lines))
    (directory / "sha256sums").write_text(text)
    (directory / "sha256sums.sig").write_text(key.sign(text.encode()))


def _specs(release: Release, feeds: Iterable[str], target: Target | None) -> list[PackageSpec]:
    wanted = set(feeds)
    return [
        spec
        for spec in PACKAGES
        if spec.feed in wanted
        and release.era in spec.eras
        and (spec.only_target is None or (target is not None and spec.only_target == target.name))
    ]


class _ReleaseWriter:
    """Writes ``releases/<version>/`` for one release."""

    def __init__(
        self, root: Path, release: Release, key: SecretKey, seed: int, base_url: str
    ) -> None:
        self.release = release
        self.key = key
        self.seed = seed
        self.base_url = base_url
        self.directory = root / "releases" / release.version
        self.abi_of = {spec.name: spec.abi_for(release.era) for spec in PACKAGES}
        self._built: dict[tuple[str, str], BuiltPackage] = {}

    def _build(self, specs: list[PackageSpec], target: Target) -> list[BuiltPackage]:
        packages = []
        for spec in specs:
            cache_key = (spec.name, "all" if spec.arch_all else target.arch_packages)
            if cache_key not in self._built:
                self._built[cache_key] = build_package(
                    spec, self.release, target, self.abi_of, self.seed
                )
            packages.append(self._built[cache_key])
        return packages

    @property
    def kmods_dir(self) -> str:
        release = self.release
        return f"{release.kernel_version}-{release.kernel_release}-{vermagic(release, self.seed)}"

    def linux_kernel(self) -> dict[str, str] | None:
        if not self.release.has_kmods_dir:
            return None
        return {
            "version": self.release.kernel_version,
            "release": self.release.kernel_release,
            "vermagic": vermagic(self.release, self.seed),
        }

    def write_arch(self, target: Target) -> None:
        """``packages/<arch>/``: the feeds, ``feeds.conf`` and signed ``sha256sums`` (§2.5)."""
        arch_dir = self.directory / "packages" / target.arch_packages
        for feed in ARCH_FEEDS:
            packages = self._build(_specs(self.release, [feed], None), target)
            write_feed(
                arch_dir / feed,
                packages,
                target.arch_packages,
                self.release.index_json_version,
                self.key,
            )
        feeds = "".join(
            f"src-git {feed} https://git.openwrt.org/feed/{feed}.git^"
            f"{hashlib.sha1(f'{self.seed}:{feed}:{self.release.version}'.encode(), usedforsecurity=False).hexdigest()}\n"  # noqa: E501
            for feed in ARCH_FEEDS[1:]
        )
        (arch_dir / "feeds.conf").write_text(feeds)
        _write_signed_sha256sums(arch_dir, self.key)

    def write_target(self, target: Target) -> None:
        """``targets/<t>/<s>/``: packages, kmods, profiles, images, the IB, checksums (§2.3)."""
        release = self.release
        target_dir = self.directory / "targets" / target.board / target.subtarget
        kernel = build_kernel(release, target, self.seed)
        libc = build_libc(release, target, self.seed)
        core_feeds = ["target"] if release.has_kmods_dir else ["target", "kmods"]
        write_feed(
            target_dir / "packages",
            self._build(_specs(release, core_feeds, target), target),
            target.arch_packages,
            release.index_json_version,
            self.key,
            unindexed=(kernel, libc),
        )
        if release.has_kmods_dir:
            write_feed(
                target_dir / "kmods" / self.kmods_dir,
                self._build(_specs(release, ["kmods"], target), target),
                target.arch_packages,
                release.index_json_version,
                self.key,
            )
        devices = tuple(d for d in DEVICES if d.target == target.name)
        default_packages = BASE_DEFAULT_PACKAGES + target.extra_default_packages
        profiles = {device.id: self._write_device_images(target_dir, target, device)
                    for device in devices}
        (target_dir / "profiles.json").write_text(
            json.dumps(self._profiles_document(target, default_packages, profiles),
                       sort_keys=True, separators=(",", ":"))
        )
        self._write_buildinfo(target_dir, target)
        pack_imagebuilder(
            ImageBuilderInputs(
                release=release,
                target=target,
                devices=devices,
                default_packages=default_packages,
                linux_kernel=self.linux_kernel(),
                kernel=kernel,
                libc=libc,
                public_key_text=self.key.public_key.to_text(),
                fingerprint=self.key.public_key.fingerprint_hex,
                repositories=repositories_conf(
                    release, target, self.kmods_dir if release.has_kmods_dir else None,
                    self.base_url,
                ),
                seed=self.seed,
            ),
            target_dir,
        )
        _write_signed_sha256sums(target_dir, self.key)

    def _profiles_document(
        self, target: Target, default_packages: tuple[str, ...], profiles: dict[str, object]
    ) -> dict[str, object]:
        document: dict[str, object] = {
            "arch_packages": target.arch_packages,
            "default_packages": sorted(default_packages),
            "metadata_version": 1,
            "profiles": profiles,
            "source_date_epoch": self.release.source_date_epoch,
            "target": target.name,
            "version_code": self.release.version_code,
            "version_number": self.release.version,
        }
        if (kernel := self.linux_kernel()) is not None:
            document["linux_kernel"] = kernel
        return document

    def _write_device_images(self, target_dir: Path, target: Target, device: Device) -> object:
        """Stand-in images as the mirror lists them; builds come from the IB, not from these."""
        release = self.release
        prefix = f"openwrt-{release.version}-{target.board}-{target.subtarget}-{device.id}"
        entries = [(i.filesystem, i.image, i.type) for i in device.images]
        if device.initramfs:
            entries.append(("initramfs", "kernel.bin", "kernel"))
        images = []
        for filesystem, image, image_type in entries:
            name = f"{prefix}-{filesystem}-{image}"
            rng = random.Random(f"{self.seed}:{name}")
            content = rng.randbytes(16 * 1024)
            if device.has_image_metadata or image_type.startswith("combined"):
                content = fwtool.append_metadata(content, self._image_metadata(target, device))
            unsigned = content
            if image_type in ("sysupgrade", "factory", "combined", "combined-efi"):
                signature = self.key.sign(content).encode()
                content = fwtool.append_signature(content, signature)
            (target_dir / name).write_bytes(content)
            images.append({
                "filesystem": filesystem,
                "name": name,
                "sha256": hashlib.sha256(content).hexdigest(),
                "sha256_unsigned": hashlib.sha256(unsigned).hexdigest(),
                "type": image_type,
            })
        return {
            "device_packages": list(device.packages),
            "image_prefix": prefix,
            "images": images,
            "supported_devices": list(device.supported_devices),
            "titles": list(device.titles),
        }

    def _image_metadata(self, target: Target, device: Device) -> dict[str, object]:
        return {
            "metadata_version": "1.1",
            "compat_version": "1.0",
            "supported_devices": list(device.supported_devices),
            "version": {
                "dist": "OpenWrt",
                "version": self.release.version,
                "revision": self.release.version_code,
                "target": target.name,
                "board": device.id,
            },
        }

    def _write_buildinfo(self, target_dir: Path, target: Target) -> None:
        (target_dir / "version.buildinfo").write_text(f"{self.release.version_code}\n")
        (target_dir / "config.buildinfo").write_text(
            f"CONFIG_TARGET_{target.board}=y\nCONFIG_TARGET_{target.board}_{target.subtarget}=y\n"
            "CONFIG_ALL_KMODS=y\nCONFIG_ALL_NONSHARED=y\nCONFIG_BUILDBOT=y\n"
            "CONFIG_IB=y\nCONFIG_SIGNATURE_CHECK=y\n"
        )
        (target_dir / "feeds.buildinfo").write_text(
            (self.directory / "packages" / target.arch_packages / "feeds.conf").read_text()
        )

    def write_indexes(self) -> None:
        """``.targets.json`` and the Firmware Selector's ``.overview.json`` (§2.2, §2.8)."""
        targets = {t.name: t.arch_packages for t in TARGETS}
        (self.directory / ".targets.json").write_text(json.dumps(targets, indent=1) + "\n")
        overview = {
            "release": self.release.version,
            "profiles": [
                {"id": d.id, "target": d.target, "titles": list(d.titles)} for d in DEVICES
            ],
        }
        (self.directory / ".overview.json").write_text(json.dumps(overview) + "\n")


def _prepare(outdir: Path) -> None:
    if outdir.exists() and any(outdir.iterdir()):
        if not (outdir / ".versions.json").exists():
            raise MirrorError(
                f"{outdir} is not empty and holds no mirror; choose an empty or new directory"
            )
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True, exist_ok=True)


def _versions_document() -> dict[str, object]:
    versions = [r.version for r in RELEASES]
    stable = versions[-1]
    oldstable = next(r.version for r in reversed(RELEASES) if r.era != RELEASES[-1].era)
    return {
        "stable_version": stable,
        "oldstable_version": oldstable,
        "upcoming_version": "",
        "versions_list": sorted(versions, reverse=True),
    }


def generate_mirror(
    outdir: Path,
    seed: int = 0,
    base_url: str = OFFICIAL_BASE_URL,
    progress: Progress | None = None,
) -> GeneratedMirror:
    """Write the mirror into ``outdir`` (replacing an earlier mirror there) and its key beside it.

    ``base_url`` is the mirror URL baked into each ImageBuilder's ``repositories.conf``; the
    default is the official one, as in real ImageBuilders.
    """
    outdir = outdir.resolve()
    _prepare(outdir)
    key = mirror_key(seed)
    report = progress or (lambda _step: None)
    for release in RELEASES:
        writer = _ReleaseWriter(outdir, release, key, seed, base_url)
        written_arches: set[str] = set()
        for target in TARGETS:
            if target.arch_packages not in written_arches:
                report(f"{release.version} packages/{target.arch_packages}")
                writer.write_arch(target)
                written_arches.add(target.arch_packages)
        for target in TARGETS:
            report(f"{release.version} targets/{target.name}")
            writer.write_target(target)
        writer.write_indexes()
    (outdir / ".versions.json").write_text(json.dumps(_versions_document(), indent=1) + "\n")
    public_key = outdir.with_name(f"{outdir.name}.pub")
    public_key.write_text(key.public_key.to_text(comment="firmforge synthetic mirror key"))
    return GeneratedMirror(
        root=outdir,
        public_key=public_key,
        fingerprint=key.public_key.fingerprint_hex,
        versions=tuple(r.version for r in RELEASES),
        steps=generation_steps(),
    )
