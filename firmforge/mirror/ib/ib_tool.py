#!/usr/bin/env python3
"""``ib-tool``: the engine behind the synthetic ImageBuilder's ``Makefile``.

Installed as ``staging_dir/host/bin/ib-tool`` next to its ``ibtool_*.py`` modules and
``fwtool.py``; the ``Makefile`` calls ``ib-tool --topdir <IB> <command> [--option value]…``
with every user value as one argument. It reads ``.targetinfo.json`` (target and device
metadata), ``repositories.conf`` and ``keys/``, and behaves like the real IB's
``make info|manifest|image|package_*|checksum|clean`` (research §1.4–§1.10). Standard library
only: it runs with whatever ``python3`` the build host has.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
from pathlib import Path
from typing import Any, TextIO

import ibtool_ed25519
import ibtool_image
import ibtool_opkg
import ibtool_rootfs

_KEY = "key-build"
_LOCAL_KEY_COMMENT = "Local build key"


class ToolError(Exception):
    """A failure to report as ``message`` (to stdout or stderr) with exit status 1."""

    def __init__(self, message: str, stdout: bool = False) -> None:
        super().__init__(message)
        self.stdout = stdout


# --- the IB tree ------------------------------------------------------------------------------


class ImageBuilder:
    def __init__(self, topdir: Path) -> None:
        self.topdir = topdir
        try:
            self.info: dict[str, Any] = json.loads((topdir / ".targetinfo.json").read_text())
        except (OSError, ValueError) as exc:
            raise ToolError(f"ib-tool: cannot read {topdir}/.targetinfo.json: {exc}") from exc
        self.board: str = self.info["board"]
        self.subtarget: str = self.info["subtarget"]

    @property
    def kernel_dir(self) -> Path:
        """``build_dir/target-<arch>_<libc>/linux-<board>_<subtarget>`` (``KERNEL_BUILD_DIR``)."""
        wanted = f"linux-{self.board}_{self.subtarget}"
        found = sorted(p for p in self.topdir.glob("build_dir/target-*/linux-*") if p.is_dir())
        for path in found:
            if path.name == wanted:
                return path
        if found:
            return found[0]
        arch = self.info["arch_packages"]
        return self.topdir / f"build_dir/target-{arch}_{self.info.get('libc', 'musl')}/{wanted}"

    @property
    def target_dir(self) -> Path:
        return self.kernel_dir.parent / f"root-{self.board}"

    def bin_dir(self, value: str) -> Path:
        path = Path(value) if value else Path("bin/targets") / self.board / self.subtarget
        return path if path.is_absolute() else self.topdir / path

    def device(self, profile: str) -> dict[str, Any]:
        devices: list[dict[str, Any]] = self.info["devices"]
        if not profile:
            return devices[0]
        for device in devices:
            if profile in (device["id"], f"DEVICE_{device['id']}"):
                return device
        raise ToolError(
            f'Profile "{profile}" does not exist!\n'
            'Use "make info" to get a list of available profile names.',
            stdout=True,
        )

    def build_packages(self, device: dict[str, Any], user: str) -> list[str]:
        """``BUILD_PACKAGES`` of the IB Makefile (research §1.4)."""
        base = sorted({*self.info["default_packages"], *device["packages"], "kernel"})
        return _drop_removed(user.split() + _drop_removed(base))

    @property
    def keeps_user_flag(self) -> bool:
        """23.05 images keep ``install user installed``; 24.10+ rewrite it to ``ok`` (§3.3)."""
        head = str(self.info["version_number"]).split(".", 1)[0]
        return head.isdigit() and int(head) < 24

    # keys (``_check_keys``)
    def check_keys(self) -> ibtool_image.SigningKey | None:
        _sources, check_signature = ibtool_opkg.read_repositories(self.repositories)
        if not check_signature:
            return None
        key, pub, ucert = (
            self.topdir / _KEY,
            self.topdir / f"{_KEY}.pub",
            self.topdir / f"{_KEY}.ucert",
        )
        if not (_nonempty(key) and _nonempty(pub)):
            sys.stderr.write("Generate local signing keys...\n")
            seed, fingerprint = ibtool_ed25519.generate_secret_key()
            key.write_text(
                ibtool_ed25519.usign_secret_key_text(seed, fingerprint, _LOCAL_KEY_COMMENT)
            )
            key.chmod(0o600)
            pub.write_text(
                ibtool_ed25519.usign_public_key_text(seed, fingerprint, _LOCAL_KEY_COMMENT)
            )
            keys = self.topdir / "keys"
            keys.mkdir(exist_ok=True)
            shutil.copyfile(pub, keys / fingerprint.hex())
        seed, fingerprint = ibtool_ed25519.read_secret_key(key.read_text())
        if not _nonempty(ucert):
            sys.stderr.write("Generate local certificate...\n")
            self_signed = ibtool_ed25519.usign_sign(pub.read_bytes(), seed, fingerprint)
            ucert.write_bytes(self_signed.encode())
        return ibtool_image.SigningKey(seed, fingerprint, ucert.read_bytes())

    @property
    def repositories(self) -> Path:
        return self.topdir / "repositories.conf"

    # ``package_reload`` / ``package_index`` / ``opkg update``
    def _local_index_stale(self, packages: Path) -> bool:
        index, index_gz = packages / "Packages", packages / "Packages.gz"
        if not index.is_file() or not index_gz.is_file():
            return True
        reference = index_gz.stat().st_ctime_ns
        own = {index, index_gz, packages / "Packages.sig"}
        return any(p.stat().st_ctime_ns > reference for p in packages.rglob("*") if p not in own)

    def package_reload(self) -> ibtool_opkg.FeedDatabase:
        sources, check_signature = ibtool_opkg.read_repositories(self.repositories)
        packages = self.topdir / "packages"
        if packages.is_dir() and self._local_index_stale(packages):
            sys.stderr.write("Package list missing or not up-to-date, generating it.\n")
            sys.stderr.write("\nBuilding package index...\n")
            index = ibtool_opkg.build_local_index(packages)
            (packages / "Packages").write_bytes(index)
            (packages / "Packages.gz").write_bytes(gzip.compress(index, compresslevel=9, mtime=0))
            key = self.check_keys() if check_signature else None
            if key is not None:
                (packages / "Packages.sig").write_text(
                    ibtool_ed25519.usign_sign(index, key.seed, key.fingerprint)
                )
        log = ibtool_opkg.OpkgLog(sys.stderr)
        lists, _failures = ibtool_opkg.update(
            self.topdir,
            sources,
            check_signature,
            self.topdir / "tmp" / "opkg-lists",
            self.topdir / "keys",
            log,
        )
        log.flush()  # ``opkg update >&2 || true``: failures only show up at install time
        arch_priority = {"all": 100, self.info["arch_packages"]: 200}
        db = ibtool_opkg.FeedDatabase(arch_priority=arch_priority)
        for source in sources:
            if source.name in lists:
                db.load_list(source.name, source.url, lists[source.name])
        return db

    # ``package_install``
    def package_install(
        self, db: ibtool_opkg.FeedDatabase, packages: list[str], notices: TextIO | None
    ) -> bool:
        root = self.target_dir
        shutil.rmtree(root, ignore_errors=True)
        (root / "tmp").mkdir(parents=True)
        cache = self.topdir / "dl"
        cache.mkdir(exist_ok=True)
        log = ibtool_opkg.OpkgLog(notices)
        log.notice("\nInstalling packages...\n")
        for kind in ("libc", "kernel"):
            found = sorted(self.kernel_dir.glob(f"{kind}_*.ipk")) or sorted(
                (self.topdir / "packages").glob(f"{kind}_*.ipk")
            )
            if not found:
                continue
            opkg = ibtool_opkg.Opkg(db, root, cache, self.topdir, log)
            ok = opkg.install_file(found[0])
            if log.flush() and not ok:
                return False
        opkg = ibtool_opkg.Opkg(db, root, cache, self.topdir, log)
        ok = opkg.install(packages)
        log.flush()
        if ok:
            ibtool_opkg.write_database(
                db, root, int(self.info["source_date_epoch"]), self.keeps_user_flag
            )
        return ok


def _nonempty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _drop_removed(words: list[str]) -> list[str]:
    removed = {w for w in words if w.startswith("-")}
    removed |= {w[1:] for w in removed}
    return [w for w in words if w not in removed]


def _prune_rootfs(root: Path) -> None:
    """The clean-up of ``prepare_rootfs``: VCS debris, opkg lists, maintainer scripts."""
    for path in sorted(root.rglob("*"), reverse=True):
        if path.name in ("CVS", ".svn", ".git") and not path.is_symlink() and path.is_dir():
            shutil.rmtree(path)
        elif path.name.startswith(".#") and (path.is_symlink() or path.is_file()):
            path.unlink()
    opkg_dir = ibtool_rootfs.resolve_in_root(root, "usr/lib/opkg")
    for pattern in ("lists/*", "info/*.postinst*", "info/*.prerm*"):
        for path in opkg_dir.glob(pattern):
            if path.is_symlink() or path.is_file():
                path.unlink()


# --- commands ---------------------------------------------------------------------------------


def cmd_info(ib: ImageBuilder, _args: argparse.Namespace) -> int:
    info = ib.info
    out = [
        f'Current Target: "{ib.board}/{ib.subtarget}"',
        f'Current Architecture: "{info["arch"]}"',
        f'Current Revision: "{info["version_code"]}"',
        f"Default Packages: {' '.join(info['default_packages'])}",
        "Available Profiles:",
        "",
    ]
    for device in info["devices"]:
        out.append(f"{device['id']}:")
        if device.get("title"):
            out.append(f"    {device['title']}")
        out.append(f"    Packages: {' '.join(device['packages'])}")
        out.append(f"    hasImageMetadata: {1 if device.get('has_image_metadata') else 0}")
        if device["supported_devices"]:
            out.append(f"    SupportedDevices: {' '.join(device['supported_devices'])}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def cmd_manifest(ib: ImageBuilder, args: argparse.Namespace) -> int:
    device = ib.device(args.profile)
    ib.check_keys()
    db = ib.package_reload()
    if not ib.package_install(db, ib.build_packages(device, args.packages), None):
        return 1
    sys.stdout.write(ibtool_opkg.list_installed(db, strip_abi=bool(args.strip_abi)))
    return 0


def cmd_image(ib: ImageBuilder, args: argparse.Namespace) -> int:
    device = ib.device(args.profile)
    key = ib.check_keys()
    partsize = args.rootfs_partsize.strip() or str(ib.info.get("rootfs_partsize", 104))
    if not partsize.isdigit() or int(partsize) <= 0:
        raise ToolError(f"ROOTFS_PARTSIZE must be a size in MiB, not {partsize!r}")
    files = Path(args.files) if args.files else None
    if files is not None and not files.is_absolute():
        files = ib.topdir / files
    packages = ib.build_packages(device, args.packages)
    out = sys.stdout
    title = f" - {device['title']}" if device.get("title") else ""
    out.write(f"Building images for {ib.board}{title}\nPackages: {' '.join(packages)}\n\n")
    bin_dir = ib.bin_dir(args.bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    (ib.topdir / "tmp").mkdir(exist_ok=True)
    out.flush()
    db = ib.package_reload()
    if not ib.package_install(db, packages, out):
        return 1
    root = ib.target_dir
    out.write("\nFinalizing root filesystem...\n")
    if args.add_local_key and key is not None:
        keys = ibtool_rootfs.resolve_in_root(root, "etc/opkg/keys")
        keys.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ib.topdir / f"{_KEY}.pub", keys / key.fingerprint.hex())
    if files is not None:
        if not files.is_dir():
            out.flush()
            raise ToolError(f"cp: cannot stat '{files}/.': No such file or directory")
        ibtool_rootfs.copy_overlay(files, root)
    ibtool_rootfs.apply_services(root, set(args.disabled_services.split()), out)
    _prune_rootfs(root)
    out.write("\nBuilding images...\n")
    build = ibtool_image.ImageBuild(
        info=ib.info,
        device=device,
        rootfs=root,
        kernel_dir=ib.kernel_dir,
        bin_dir=bin_dir,
        extra_name=args.extra_image_name,
        partsize_mib=int(partsize),
        key=key,
    )
    out.flush()
    images = build.build(out)
    (bin_dir / f"{build.prefix}-{device['id'].lower()}.manifest").write_text(
        ibtool_opkg.list_installed(db, strip_abi=False)
    )
    if not ibtool_image.write_profiles_json(bin_dir, ib.info, device, build.prefix, images):
        out.write("JSON info file script could not find any JSON files for target\n")
    return cmd_checksum(ib, args)


def cmd_checksum(ib: ImageBuilder, args: argparse.Namespace) -> int:
    bin_dir = ib.bin_dir(args.bin_dir)
    sys.stdout.write("\nCalculating checksums...\n")
    if bin_dir.is_dir():
        ibtool_image.write_sha256sums(bin_dir)
    return 0


def cmd_package_list(ib: ImageBuilder, _args: argparse.Namespace) -> int:
    sys.stdout.write(ibtool_opkg.list_available(ib.package_reload()))
    return 0


def cmd_package_depends(ib: ImageBuilder, args: argparse.Namespace) -> int:
    db = ib.package_reload()
    sys.stdout.write("".join(ibtool_opkg.depends(db, name) for name in args.package.split()))
    return 0


def cmd_package_whatdepends(ib: ImageBuilder, args: argparse.Namespace) -> int:
    db = ib.package_reload()
    sys.stdout.write("".join(ibtool_opkg.whatdepends(db, name) for name in args.package.split()))
    return 0


def cmd_clean(ib: ImageBuilder, args: argparse.Namespace) -> int:
    for path in (ib.topdir / "tmp", ib.topdir / "dl", ib.target_dir, ib.bin_dir(args.bin_dir)):
        shutil.rmtree(path, ignore_errors=True)
    return 0


_COMMANDS = {
    "info": cmd_info,
    "manifest": cmd_manifest,
    "image": cmd_image,
    "checksum": cmd_checksum,
    "package_list": cmd_package_list,
    "package_depends": cmd_package_depends,
    "package_whatdepends": cmd_package_whatdepends,
    "clean": cmd_clean,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ib-tool", description="synthetic ImageBuilder engine")
    parser.add_argument("--topdir", type=Path, default=Path(__file__).resolve().parents[3])
    parser.add_argument("command", choices=sorted(_COMMANDS))
    for option in (
        "profile",
        "packages",
        "files",
        "bin-dir",
        "extra-image-name",
        "disabled-services",
        "rootfs-partsize",
        "rootfs-filesystem",
        "add-local-key",
        "strip-abi",
        "package",
    ):
        parser.add_argument(f"--{option}", default="")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](ImageBuilder(args.topdir.resolve()), args)
    except ToolError as exc:
        sys.stdout.flush()
        stream = sys.stdout if exc.stdout else sys.stderr
        stream.write(f"{exc}\n")
        return 1
    except (ibtool_image.BuildError, ibtool_rootfs.UnsafeArchiveError, OSError) as exc:
        sys.stdout.flush()
        sys.stderr.write(f"{exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
