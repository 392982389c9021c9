"""The LibreMesh flavour of the synthetic mirror: its package feeds, as feed.libremesh.org
publishes them.

LibreMesh is not a separate set of ImageBuilders: a LibreMesh image is an OpenWrt image built
with OpenWrt's ImageBuilder plus LibreMesh's own feeds (``lime-*`` packages, mostly
architecture-independent Lua and shell) and its default package set. The feed host lays them out
per OpenWrt branch and architecture::

    master/openwrt-<branch>/<arch>/     Packages, Packages.gz, Packages.sig, index.json, *.ipk
    profiles/openwrt-<branch>/<arch>/   community profile packages

Each ``Packages`` is signed with LibreMesh's own usign key (not the OpenWrt mirror's), which the
ImageBuilder checks once the key is put in its ``keys/``. The lime packages depend on packages of
the OpenWrt feeds (``babeld``, ``dnsmasq-full``, ``uhttpd``…), so they only install into a real
OpenWrt build, and ``lime-proto-anygw`` needs ``dnsmasq-full``, which conflicts with the default
``dnsmasq``: LibreMesh's default package set removes ``dnsmasq`` for exactly that reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from firmforge.mirror._distribution import (
    PACKAGES,
    RELEASES,
    TARGETS,
    PackageSpec,
    Release,
    Target,
)
from firmforge.mirror._feed import write_feed
from firmforge.mirror._generate import seeded_key
from firmforge.mirror._packages import BuiltPackage, build_package

__all__ = [
    "DEFAULT_PACKAGES",
    "FEED_PATHS",
    "LIME_PACKAGES",
    "GeneratedFeed",
    "feed_generation_steps",
    "generate_libremesh_feed",
]

Progress = Callable[[str], None]

FEED_PATHS = {
    "libremesh": "master/openwrt-{branch}/{arch}",
    "libremesh_profiles": "profiles/openwrt-{branch}/{arch}",
}
"""Feed name → path on the feed host; the same templates a firmforge distribution is given."""

DEFAULT_PACKAGES = (
    "lime-system", "lime-proto-babeld", "lime-proto-batadv", "lime-proto-anygw",
    "lime-hwd-openwrt-wan", "lime-app", "shared-state", "-dnsmasq", "-odhcpd-ipv6only",
)
"""What LibreMesh adds to (and removes from) every OpenWrt image."""

LIME_VERSION = "2024.1"


def _lime(name: str, size: int, description: str, *depends: str, feed: str = "libremesh",
          arch_all: bool = True, section: str = "net") -> PackageSpec:
    return PackageSpec(name, LIME_VERSION, feed, size, description, tuple(depends),
                       section=section, license="AGPL-3.0-or-later", arch_all=arch_all)


LIME_PACKAGES: tuple[PackageSpec, ...] = (
    _lime("lime-system", 48, "LibreMesh core: configuration generation from lime-node, "
          "lime-community and lime-defaults", "lua", "libuci", "ubus", "netifd"),
    _lime("lime-proto-babeld", 6, "LibreMesh babeld routing protocol support",
          "lime-system", "babeld"),
    _lime("lime-proto-batadv", 6, "LibreMesh batman-adv layer 2 mesh support", "lime-system"),
    _lime("lime-proto-anygw", 8, "LibreMesh anycast gateway: the same gateway address on "
          "every node", "lime-system", "dnsmasq-full"),
    _lime("lime-hwd-openwrt-wan", 4, "LibreMesh: use the OpenWrt wan port as wan",
          "lime-system"),
    _lime("lime-app", 320, "LibreMesh web interface (lime-app)", "lime-system", "uhttpd",
          "uhttpd-mod-ubus", "rpcd"),
    _lime("lime-docs", 60, "LibreMesh documentation on the node", section="doc"),
    _lime("lime-debug", 4, "LibreMesh debugging tools", "lime-system", "tcpdump"),
    _lime("shared-state", 12, "Share state between mesh nodes", "lime-system",
          "uclient-fetch"),
    _lime("shared-state-async", 180, "Share state between mesh nodes, asynchronous C++ "
          "implementation", "shared-state", "libubox", arch_all=False),
    _lime("babeld-auto-gw-mode", 3, "Switch babeld gateway mode by internet reachability",
          "babeld"),
    _lime("first-boot-wizard", 10, "LibreMesh first boot wizard: join or create a mesh",
          "lime-system", "lime-app"),
    _lime("profile-libremesh-suggested-packages", 1, "LibreMesh suggested package set",
          "lime-proto-babeld", "lime-proto-batadv", "lime-app", "shared-state",
          feed="libremesh_profiles", section="profiles"),
)


@dataclass(frozen=True)
class GeneratedFeed:
    root: Path
    public_key: Path
    fingerprint: str
    branches: tuple[str, ...]


def _branch_releases() -> dict[str, Release]:
    """The newest synthetic release of each branch: what that branch's feed is built for."""
    newest: dict[str, Release] = {}
    for release in RELEASES:
        newest[release.version.rsplit(".", 1)[0]] = release  # RELEASES is oldest first
    return newest


def _built(release: Release, target: Target, seed: int) -> dict[str, list[BuiltPackage]]:
    abi_of = {spec.name: spec.abi_for(release.era) for spec in (*PACKAGES, *LIME_PACKAGES)}
    feeds: dict[str, list[BuiltPackage]] = {name: [] for name in FEED_PATHS}
    for spec in LIME_PACKAGES:
        # a LibreMesh release number per branch, so the two feeds differ as on the real host
        versioned = replace(spec, release=1 if release.era == "23.05" else 4)
        feeds[spec.feed].append(build_package(versioned, release, target, abi_of, seed))
    return feeds


def generate_libremesh_feed(
    outdir: Path, seed: int = 0, progress: Progress | None = None
) -> GeneratedFeed:
    """Write the LibreMesh feed host into ``outdir`` and its public key beside it."""
    outdir = outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    key = seeded_key(seed, "libremesh-usign-key")  # LibreMesh's own, not the mirror's
    report = progress or (lambda _step: None)
    branches = _branch_releases()
    for branch, release in branches.items():
        written: set[str] = set()
        for target in TARGETS:
            arch = target.arch_packages
            if arch in written:
                continue
            written.add(arch)
            report(f"openwrt-{branch}/{arch}")
            for feed, packages in _built(release, target, seed).items():
                directory = outdir / FEED_PATHS[feed].format(branch=branch, arch=arch)
                write_feed(directory, packages, arch, release.index_json_version, key)
    public_key = outdir.with_name(f"{outdir.name}.pub")
    public_key.write_text(key.public_key.to_text(comment="firmforge synthetic LibreMesh key"))
    return GeneratedFeed(
        root=outdir,
        public_key=public_key,
        fingerprint=key.public_key.fingerprint_hex,
        branches=tuple(branches),
    )


def feed_generation_steps() -> int:
    return len(_branch_releases()) * len({t.arch_packages for t in TARGETS})
