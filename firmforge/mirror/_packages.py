"""Turning a ``PackageSpec`` into a real ``.ipk`` with its control stanza, for one release and arch.

Contents are seeded bytes (half random, half text) so archives compress like real binaries and a
rootfs grows with the packages in it. The same package, version and arch give the same bytes in
every release that carries it, as on the real mirror.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from firmforge.mirror._distribution import PackageSpec, Release, Target, abi_name
from firmforge.mirror._ipk import IpkFile, build_ipk, control_text, tar_gz

__all__ = [
    "BuiltPackage",
    "build_kernel",
    "build_libc",
    "build_package",
    "package_version",
    "vermagic",
]

MAINTAINER = "OpenWrt Developers <openwrt-devel@lists.openwrt.org>"
LIBC_VERSION = "1.2.5"

_POSTINST = """#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
"""
_PRERM = """#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
"""


@dataclass(frozen=True)
class BuiltPackage:
    name: str  # with ABI suffix, as in ``Package:``
    version: str
    architecture: str
    fields: list[tuple[str, str]]  # the full control stanza (Packages.manifest order)
    ipk: bytes

    @property
    def filename(self) -> str:
        return f"{self.name}_{self.version}_{self.architecture}.ipk"


def package_version(spec: PackageSpec, release: Release) -> str:
    """The ``Version:`` of ``spec`` in ``release``; kmods carry the kernel version (§1.9)."""
    number = spec.release + (1 if spec.name in release.bumped else 0)
    if spec.feed != "kmods":
        return release.package_version(spec.version, number)
    kernel = release.kernel_version
    if spec.version:
        kernel += ("+" if release.era == "23.05" else ".") + spec.version
    return release.package_version(kernel, int(release.kernel_release))


def _payload(seed_key: str, size: int, text: str) -> bytes:
    """``size`` bytes that compress about 2:1, the same for the same key."""
    rng = random.Random(hashlib.sha256(seed_key.encode()).digest())
    noise = rng.randbytes(size // 2)
    words = (text.encode() + b" ") * (size // (2 * max(len(text), 1)) + 1)
    return (noise + words)[:size]


def _main_path(spec: PackageSpec, release: Release) -> str:
    if spec.feed == "kmods":
        return f"lib/modules/{release.kernel_version}/{spec.name.removeprefix('kmod-')}.ko"
    if spec.section == "firmware":
        return f"lib/firmware/{spec.name}.bin"
    if spec.section == "libs":
        return f"usr/lib/{spec.name}.so.{spec.abi_for(release.era) or '0'}"
    if spec.name.startswith("luci"):
        return f"www/luci-static/resources/view/{spec.name}.js"
    if spec.section in ("base", "net"):
        return f"usr/sbin/{spec.name}"
    return f"usr/bin/{spec.name}"


def _init_script(name: str, start: int) -> bytes:
    return (
        f"#!/bin/sh /etc/rc.common\n\nSTART={start}\nSTOP={max(1, 100 - start)}\n"
        f"USE_PROCD=1\n\nstart_service() {{\n\tprocd_open_instance\n"
        f"\tprocd_set_param command /usr/sbin/{name}\n\tprocd_close_instance\n}}\n"
    ).encode()


def _release_files(release: Release, target: Target) -> dict[str, IpkFile]:
    """The version files base-files installs (read by clients on the device)."""
    code = release.version_code
    openwrt_release = (
        "DISTRIB_ID='OpenWrt'\n"
        f"DISTRIB_RELEASE='{release.version}'\n"
        f"DISTRIB_REVISION='{code}'\n"
        f"DISTRIB_TARGET='{target.name}'\n"
        f"DISTRIB_ARCH='{target.arch_packages}'\n"
        f"DISTRIB_DESCRIPTION='OpenWrt {release.version} {code}'\n"
        "DISTRIB_TAINTS=''\n"
    )
    os_release = (
        'NAME="OpenWrt"\n'
        f'VERSION="{release.version}"\n'
        'ID="openwrt"\n'
        f'PRETTY_NAME="OpenWrt {release.version}"\n'
        f'BUILD_ID="{code}"\n'
        f'OPENWRT_BOARD="{target.name}"\n'
        f'OPENWRT_ARCH="{target.arch_packages}"\n'
        f'OPENWRT_RELEASE="OpenWrt {release.version} {code}"\n'
    )
    return {
        "etc/openwrt_release": IpkFile(openwrt_release.encode()),
        "usr/lib/os-release": IpkFile(os_release.encode()),
        "etc/os-release": IpkFile(b"", symlink_to="../usr/lib/os-release"),
        "etc/openwrt_version": IpkFile(f"{code}\n".encode()),
    }


def _data_files(
    spec: PackageSpec, release: Release, target: Target, architecture: str, seed: int
) -> dict[str, IpkFile]:
    version = package_version(spec, release)
    key = f"{seed}:{spec.name}:{version}:{architecture}"
    files = {
        _main_path(spec, release): IpkFile(
            _payload(key, spec.size_kib * 1024, spec.description), mode=0o755
        )
    }
    if spec.service:
        name, start = spec.service
        files[f"etc/init.d/{name}"] = IpkFile(_init_script(name, start), mode=0o755)
    for path in spec.conffiles:
        files[path.lstrip("/")] = IpkFile(f"# {spec.name} configuration\n".encode())
    if spec.name == "base-files":
        files.update(_release_files(release, target))
    return files


def _depends(spec: PackageSpec, kernel_version: str, abi_of: dict[str, str | None]) -> list[str]:
    """Dependencies name the ABI-suffixed package (§3.1); kmods pin the kernel (§3.1)."""
    rendered = [
        " | ".join(abi_name(alt.strip(), abi_of.get(alt.strip())) for alt in dep.split("|"))
        for dep in spec.depends
    ]
    if spec.feed == "kmods":
        rendered.insert(0, f"kernel (={kernel_version})")
    return rendered


def vermagic(release: Release, seed: int) -> str:
    """The 32-hex kernel vermagic of a release (fixed per seed)."""
    digest = hashlib.md5(f"{seed}:{release.kernel_version}".encode(), usedforsecurity=False)
    return digest.hexdigest()


def _assemble(
    fields: list[tuple[str, str]],
    data: dict[str, IpkFile],
    release: Release,
    conffiles: tuple[str, ...],
) -> BuiltPackage:
    data_tar = tar_gz(data, release.source_date_epoch)
    if release.era == "23.05":
        installed_size = len(data_tar)  # ipkg-build 23.05: size of the compressed data.tar.gz
    else:
        installed_size = sum(len(f.content) for f in data.values())
    fields = [*fields, ("Installed-Size", str(installed_size))]
    description = fields.pop(next(i for i, (k, _) in enumerate(fields) if k == "Description"))
    fields.append(description)
    ipk = build_ipk(
        control_text(fields),
        data_tar,
        release.source_date_epoch,
        scripts={"postinst": _POSTINST, "prerm": _PRERM},
        conffiles=conffiles,
    )
    values = dict(fields)
    return BuiltPackage(values["Package"], values["Version"], values["Architecture"], fields, ipk)


def build_package(
    spec: PackageSpec,
    release: Release,
    target: Target,
    abi_of: dict[str, str | None],
    seed: int,
) -> BuiltPackage:
    """``abi_of`` maps every base name to its ABI version, to name dependencies."""
    architecture = "all" if spec.arch_all else target.arch_packages
    abi = spec.abi_for(release.era)
    name = abi_name(spec.name, abi)
    version = package_version(spec, release)
    feed_dir = {"kmods": "package/kernel/linux", "target": "package/base-files"}.get(
        spec.feed, f"feeds/{spec.feed}/{spec.name}"
    )
    fields: list[tuple[str, str]] = [("Package", name), ("Version", version)]
    kernel_version = release.kernel_package_version(vermagic(release, seed))
    depends = _depends(spec, kernel_version, abi_of)
    if depends:
        fields.append(("Depends", ", ".join(depends)))
    if spec.conflicts:
        fields.append(("Conflicts", ", ".join(spec.conflicts)))
    provides = list(spec.provides) + ([spec.name] if abi else [])
    if provides:
        fields.append(("Provides", ", ".join(provides)))
    fields += [
        ("Source", feed_dir),
        ("SourceName", spec.name),
        ("License", spec.license),
        ("LicenseFiles", "LICENSE"),
        ("Section", "kernel" if spec.feed == "kmods" else spec.section),
        ("SourceDateEpoch", str(release.source_date_epoch)),
    ]
    if release.era != "23.05":
        fields.append(("URL", "https://openwrt.org/"))
    if abi:
        fields.append(("ABIVersion", abi))
    if spec.essential:
        fields.append(("Essential", "yes"))
    fields += [
        ("Maintainer", MAINTAINER),
        ("Architecture", architecture),
        ("Description", spec.description),
    ]
    data = _data_files(spec, release, target, architecture, seed)
    return _assemble(fields, data, release, spec.conffiles)


def build_kernel(release: Release, target: Target, seed: int) -> BuiltPackage:
    """The ``kernel`` package the IB installs first; it is in no feed index (§3.1)."""
    version = release.kernel_package_version(vermagic(release, seed))
    fields = [
        ("Package", "kernel"),
        ("Version", version),
        ("Section", "sys"),
        ("SourceDateEpoch", str(release.source_date_epoch)),
        ("Maintainer", MAINTAINER),
        ("Architecture", target.arch_packages),
        ("Description", "Kernel for the target, the root of every kmod dependency"),
    ]
    data = {
        f"lib/modules/{release.kernel_version}/modules.builtin": IpkFile(
            _payload(f"{seed}:kernel:{version}:{target.name}", 8 * 1024, "kernel/drivers")
        )
    }
    return _assemble(fields, data, release, ())


def build_libc(release: Release, target: Target, seed: int) -> BuiltPackage:
    """The ``libc`` hold package the IB installs first (musl)."""
    version = release.package_version(LIBC_VERSION, 4)
    fields = [
        ("Package", "libc"),
        ("Version", version),
        ("Section", "libs"),
        ("Status", "unknown hold not-installed"),
        ("Essential", "yes"),
        ("Maintainer", MAINTAINER),
        ("Architecture", target.arch_packages),
        ("Description", "C Standard Library (musl)"),
    ]
    data = {
        f"lib/ld-musl-{target.arch}.so.1": IpkFile(
            _payload(f"{seed}:libc:{version}:{target.arch_packages}", 600 * 1024, "musl libc"),
            mode=0o755,
        ),
        "lib/libc.so": IpkFile(b"", symlink_to=f"ld-musl-{target.arch}.so.1"),
    }
    return _assemble(fields, data, release, ())
