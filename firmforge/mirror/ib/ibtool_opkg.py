"""A faithful stand-in for the ``opkg`` the ImageBuilder runs (``openwrt/opkg-lede``).

It reproduces what callers observe: ``opkg update`` (feed lists and their usign signatures),
``opkg install`` (candidate selection through ``Provides``, version constraints, alternatives,
conflicts, file clashes, the pre-check of unresolved dependencies), the rootfs
``/usr/lib/opkg`` database, ``list-installed``, ``list``, ``depends`` and ``whatdepends``, with
opkg's messages: notices as they happen, errors collected and printed at the end as
``Collected errors:`` / `` * <function>: <text>``. Standard library only.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TextIO

import ibtool_ed25519
import ibtool_rootfs
from ibtool_index import (
    Dependency,
    Package,
    compare_versions,
    parse_stanzas,
    read_ipk,
    render_depends,
    render_version,
)

__all__ = [
    "FeedDatabase",
    "Opkg",
    "OpkgLog",
    "Source",
    "build_local_index",
    "read_repositories",
    "update",
]

DEST = "root"


class OpkgLog:
    """opkg's output: notices go out at once, errors are collected (``opkg_message``)."""

    def __init__(self, notices: TextIO | None) -> None:
        self.notices = notices
        self.errors: list[str] = []

    def notice(self, text: str) -> None:
        if self.notices is not None:
            self.notices.write(text)

    def error(self, function: str, text: str) -> None:
        self.errors.append(f"{function}: {text}")

    def raw_error(self, text: str) -> None:
        self.errors.append(text)

    def flush(self) -> bool:
        """Print ``Collected errors:`` to stderr; true if there were any."""
        if self.notices is not None:
            self.notices.flush()
        if not self.errors:
            return False
        sys.stderr.write("Collected errors:\n" + "".join(f" * {e}" for e in self.errors))
        sys.stderr.flush()
        self.errors = []
        return True


# --- repositories.conf and downloads ----------------------------------------------------------


@dataclass(frozen=True)
class Source:
    name: str
    url: str
    gzip: bool


def read_repositories(path: Path) -> tuple[list[Source], bool]:
    """``src``/``src/gz`` lines (first declaration of a name wins) and ``check_signature``."""
    sources: list[Source] = []
    check_signature = False
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if words[0] in ("src", "src/gz") and len(words) >= 3:
            if all(s.name != words[1] for s in sources):
                sources.append(Source(words[1], words[2], words[0] == "src/gz"))
        elif words[0] == "option" and len(words) >= 2 and words[1] == "check_signature":
            check_signature = len(words) < 3 or words[2] not in ("0", "false", "no")
    return sources, check_signature


class DownloadError(Exception):
    def __init__(self, function: str, messages: list[str]) -> None:
        super().__init__(messages[0])
        self.function = function
        self.messages = messages


def fetch(url: str, topdir: Path) -> bytes:
    """``opkg_download``: ``file:`` paths (relative to the IB) or http(s) through urllib."""
    if url.startswith("file:"):
        path = Path(urllib.parse.unquote(url[5:]))
        if not path.is_absolute():
            path = topdir / path
        try:
            return path.read_bytes()
        except OSError as exc:
            raise DownloadError(
                "file_copy", [f"Failed to copy file {path} to the lists directory.\n"]
            ) from exc
    request = urllib.request.Request(url, headers={"User-Agent": "Wget/1.21 (opkg)"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            "opkg_download", [f"Failed to download {url}, wget returned 8.\n"]
        ) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DownloadError(
            "opkg_download",
            [
                f"Failed to download {url}, wget returned 4.\n",
                "Check your network settings and connectivity.\n\n",
            ],
        ) from exc


def _download(url: str, topdir: Path, log: OpkgLog) -> bytes | None:
    log.notice(f"Downloading {url}\n")
    try:
        return fetch(url, topdir)
    except DownloadError as exc:
        for message in exc.messages:
            log.error(exc.function, message)
        return None


def update(
    topdir: Path,
    sources: list[Source],
    check_signature: bool,
    lists_dir: Path,
    keys_dir: Path,
    log: OpkgLog,
) -> tuple[dict[str, str], int]:
    """``opkg update``: fetch every list (and its ``.sig``); a list whose signature does not
    verify is deleted, as opkg does. Returns the usable lists and the failure count."""
    lists_dir.mkdir(parents=True, exist_ok=True)
    lists: dict[str, str] = {}
    failures = 0
    for source in sources:
        list_file = lists_dir / source.name
        sig_file = lists_dir / f"{source.name}.sig"
        for stale in (list_file, sig_file):
            stale.unlink(missing_ok=True)
        url = f"{source.url}/{'Packages.gz' if source.gzip else 'Packages'}"
        raw = _download(url, topdir, log)
        text: bytes | None = None
        if raw is not None:
            try:
                text = gzip.decompress(raw) if source.gzip else raw
            except (OSError, EOFError):
                log.error("pkg_hash_add_from_file", f"Failed to decompress {url}.\n")
        if text is None:
            failures += 1
            log.notice(f"*** Failed to download the package list from {url}\n\n")
            continue
        list_file.write_bytes(text)
        log.notice(f"Updated list of available packages in {list_file}\n")
        if check_signature:
            signature = _download(f"{source.url}/Packages.sig", topdir, log)
            verified = False
            if signature is None:
                failures += 1
                log.notice("Signature file download failed.\n")
            else:
                sig_file.write_bytes(signature)
                verified = ibtool_ed25519.usign_verify(
                    text, signature.decode("utf-8", "replace"), keys_dir
                )
                log.notice("Signature check passed.\n" if verified else "Signature check failed.\n")
            if not verified:
                log.notice("Remove wrong Signature file.\n")
                sig_file.unlink(missing_ok=True)
                list_file.unlink(missing_ok=True)
                continue
        lists[source.name] = text.decode("utf-8", "replace")
    return lists, failures


def build_local_index(packages_dir: Path) -> bytes:
    """``scripts/ipkg-make-index.sh``: one stanza per ``*.ipk`` (not kernel/libc), with
    ``Filename``, ``Size`` and ``SHA256sum`` inserted before ``Description``."""
    stanzas: list[str] = []
    for ipk in sorted(packages_dir.rglob("*.ipk"), key=lambda p: p.as_posix()):
        if ipk.name.split("_", 1)[0] in ("kernel", "libc") or not ipk.is_file():
            continue
        blob = ipk.read_bytes()
        try:
            control = read_ipk(blob).control.decode("utf-8", "replace")
        except ValueError:
            continue
        inserted = (
            f"Filename: {ipk.relative_to(packages_dir).as_posix()}\nSize: {len(blob)}\n"
            f"SHA256sum: {hashlib.sha256(blob).hexdigest()}\n"
        )
        lines = control.splitlines(keepends=True)
        at = next((i for i, line in enumerate(lines) if line.startswith("Description:")), None)
        if at is None:
            lines.append(inserted)
        else:
            lines.insert(at, inserted)
        stanzas.append("".join(lines).rstrip("\n") + "\n\n")
    return "".join(stanzas).encode()


# --- the package database ---------------------------------------------------------------------


@dataclass
class FeedDatabase:
    """opkg's package hash: packages by name and the abstract names each one provides."""

    arch_priority: dict[str, int]
    by_name: dict[str, list[Package]] = field(default_factory=dict)
    provided_by: dict[str, list[str]] = field(default_factory=dict)
    file_owner: dict[str, Package] = field(default_factory=dict)

    def add(self, package: Package) -> Package:
        name = package.name
        if not name or "/" in name or name.startswith("."):
            return package
        for existing in self.by_name.get(name, []):
            if (
                existing.version == package.version
                and existing.architecture == package.architecture
            ):
                return existing  # the same package in two feeds is one package (first wins)
        self.by_name.setdefault(name, []).append(package)
        for provided in [name, *package.provides]:
            providers = self.provided_by.setdefault(provided, [])
            if name not in providers:
                providers.append(name)
        return package

    def load_list(self, feed: str, url: str, text: str) -> None:
        for fields in parse_stanzas(text):
            self.add(Package(fields=fields, feed=feed, feed_url=url))

    def installed(self) -> list[Package]:
        return [p for packages in self.by_name.values() for p in packages if p.installed]

    def installed_named(self, name: str) -> Package | None:
        return next((p for p in self.by_name.get(name, []) if p.installed), None)

    def available(self) -> list[Package]:
        return [p for packages in self.by_name.values() for p in packages]


def _sort_key(db: FeedDatabase) -> Callable[[Package], object]:
    def compare(left: Package, right: Package) -> int:
        if left.name != right.name:
            return -1 if left.name < right.name else 1
        return compare_versions(left.version, right.version) or (
            db.arch_priority.get(left.architecture, 0) - db.arch_priority.get(right.architecture, 0)
        )

    return functools.cmp_to_key(compare)


# --- installing -------------------------------------------------------------------------------


class Opkg:
    """One ``opkg`` invocation against the rootfs at ``root`` (a fresh set of check marks)."""

    def __init__(
        self, db: FeedDatabase, root: Path, cache: Path, topdir: Path, log: OpkgLog
    ) -> None:
        self.db = db
        self.root = root
        self.cache = cache
        self.topdir = topdir
        self.log = log
        self.cli_args: list[str] = []
        self.checked: set[str] = set()
        self.pre_checked: set[str] = set()
        self.unpacked: list[Package] = []

    # candidate selection (pkg_hash_fetch_best_installation_candidate)
    def _best_candidate(
        self, name: str, accept: Callable[[Package], bool], quiet: bool
    ) -> Package | None:
        providers = self.db.provided_by.get(name)
        if not providers:
            return None
        matching: list[Package] = []
        matching_names: list[str] = []
        wrong_arch = False
        for provider in providers:
            vec = self.db.by_name.get(provider, [])
            for maybe in vec:
                if self.db.arch_priority.get(maybe.architecture, 0) <= 0 or maybe in matching:
                    continue
                if not self._check_unresolved(maybe):
                    matching.append(maybe)
                    if maybe.name not in matching_names:
                        matching_names.append(maybe.name)
            if vec and not matching:
                wrong_arch = True
        if not matching:
            if wrong_arch:
                self.log.error(
                    "pkg_hash_fetch_best_installation_candidate",
                    f"Packages for {name} found, but incompatible with the architectures "
                    "configured\n",
                )
            return None
        matching.sort(key=_sort_key(self.db))
        good: Package | None = None
        score = 0
        for candidate in matching:
            if not accept(candidate):
                continue
            points = 1 + (candidate.name == name) + (candidate.name in self.cli_args)
            if points < score:
                continue
            good, score = candidate, points
            if candidate.local_file is not None:
                break
        held = installed = None
        for candidate in matching:
            if self.db.installed_named(candidate.name) is not None:
                installed = candidate
            if candidate.flags & {"hold", "prefer"}:
                held = candidate
        chosen = good or held or installed
        if chosen is not None:
            return chosen
        if len(matching_names) > 1:
            if quiet:
                return None
            best = max(self.db.arch_priority.get(p.architecture, 0) for p in matching)
            return next(p for p in matching if self.db.arch_priority.get(p.architecture, 0) == best)
        return matching[-1]

    def _check_unresolved(self, package: Package) -> bool:
        lost = self._unsatisfied(package, [], pre_check=True)
        for dependency in lost:
            self.log.error(
                "pkg_hash_check_unresolved",
                f"cannot find dependency {dependency} for {package.name}\n",
            )
        return bool(lost)

    def _satisfier(self, compound: list[Dependency], installed_only: bool) -> Package | None:
        for dependency in compound:

            def accept(p: Package, d: Dependency = dependency) -> bool:
                return (p.installed or not installed_only) and d.satisfied_by(p.version)

            candidate = self._best_candidate(dependency.name, accept, quiet=True)
            if candidate is not None and accept(candidate):
                return candidate
        return None

    def _unsatisfied(
        self, package: Package, unsatisfied: list[Package], pre_check: bool
    ) -> list[str]:
        """``pkg_hash_fetch_unsatisfied_dependencies``: what to install first, and what is lost."""
        checked = self.pre_checked if pre_check else self.checked
        if package.name in checked:
            return []
        checked.add(package.name)
        lost: list[str] = []
        for compound in package.depends:
            if self._satisfier(compound, installed_only=True) is not None:
                continue
            entry = self._satisfier(compound, installed_only=False)
            if entry is None:
                lost.append(render_depends(compound))
            elif entry is not package and entry not in unsatisfied:
                newstuff = self._unsatisfied(entry, unsatisfied, pre_check)
                unsatisfied.append(entry)
                lost.extend(newstuff)
        return lost

    def _satisfy_dependencies(self, package: Package) -> bool:
        unsatisfied: list[Package] = []
        lost = self._unsatisfied(package, unsatisfied, pre_check=False)
        if lost:
            self.log.error(
                "satisfy_dependencies_for",
                f"Cannot satisfy the following dependencies for {package.name}:\n",
            )
            previous = None
            for dependency in lost:
                if dependency != previous:
                    self.log.raw_error(f"\t{dependency}\n")
                previous = dependency
            return False
        for dependency in unsatisfied:
            dependency.want = True
        for dependency in unsatisfied:
            if not dependency.installed:
                ok = self._install_package(dependency)
                dependency.auto_installed = True
                if not ok:
                    return False
        return True

    def _check_conflicts(self, package: Package) -> bool:
        found: list[Package] = []
        for compound in package.conflicts:
            for dependency in compound:
                for scout in self.db.by_name.get(dependency.name, []):
                    if (
                        (scout.installed or scout.want)
                        and scout is not package
                        and dependency.satisfied_by(scout.version)
                        and scout.name not in package.replaces
                        and scout not in found
                    ):
                        found.append(scout)
        if not found:
            return True
        self.log.error(
            "check_conflicts_for", f"The following packages conflict with {package.name}:\n"
        )
        for scout in found:
            self.log.error("check_conflicts_for", f"\t{scout.name}")
        self.log.raw_error("\n")
        return False

    def _fetch_package(self, package: Package) -> bytes | None:
        if package.local_file is not None:
            return package.local_file.read_bytes()
        filename = package.fields.get("Filename", "")
        if not filename or filename.startswith("/") or ".." in filename.split("/"):
            self.log.error(
                "opkg_download_pkg",
                f"Package {package.name} does not have a valid filename field.\n",
            )
            return None
        url = f"{package.feed_url}/{urllib.parse.quote(filename)}"
        local_feed = package.feed_url.startswith("file:") and not package.feed_url.startswith(
            "file:/"
        )
        cached = self.cache / filename.rsplit("/", 1)[-1]
        blob: bytes | None = None
        if not local_feed and cached.is_file():
            blob = cached.read_bytes()
            if self._integrity_ok(package, blob):
                self.log.notice(f"Copying {cached}.\n")
            else:
                self.log.notice(
                    f"Removing {package.name} from cache because it has incorrect checksum.\n"
                )
                cached.unlink()
                blob = None
        if blob is None:
            blob = _download(url, self.topdir, self.log)
            if blob is None:
                self.log.error(
                    "opkg_install_pkg",
                    f"Failed to download {package.name}. Perhaps you need to run 'opkg update'?\n",
                )
                return None
            if not local_feed:
                self.cache.mkdir(parents=True, exist_ok=True)
                cached.write_bytes(blob)
        if not self._integrity_ok(package, blob):
            self.log.error(
                "opkg_install_pkg",
                f"Checksum or size mismatch for package {package.name}. Either the opkg or the "
                "package index are corrupt. Try 'opkg update'.\n",
            )
            return None
        return blob

    @staticmethod
    def _integrity_ok(package: Package, blob: bytes) -> bool:
        size = package.fields.get("Size")
        if size is not None and size.isdigit() and int(size) != len(blob):
            return False
        digest = package.fields.get("SHA256sum")
        return digest is None or hashlib.sha256(blob).hexdigest() == digest.lower()

    def _check_clashes(self, package: Package, paths: Iterable[str], old: Package | None) -> bool:
        clashes = 0
        for path in paths:
            on_disk = ibtool_rootfs.resolve_in_root(self.root, path, follow_last=False)
            if not (on_disk.is_symlink() or on_disk.exists()) or on_disk.is_dir():
                continue
            owner = self.db.file_owner.get(path)
            if owner is not None and (
                (old is not None and owner.name == old.name)
                or owner.name in package.replaces
                or owner.name == package.name
            ):
                continue
            self.log.error(
                "check_data_file_clashes",
                f"Package {package.name} wants to install file {on_disk}\n"
                "\tBut that file is already provided by package ",
            )
            self.log.raw_error(
                f"{owner.name}\n"
                if owner is not None
                else "<no package>\nPlease move this file out of the way and try again.\n"
            )
            clashes += 1
        return clashes == 0

    def _data_paths(self, data: bytes) -> list[str]:
        paths = []
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for member in tar:
                parts = [p for p in member.name.split("/") if p not in ("", ".")]
                if parts and not member.isdir() and ".." not in parts:
                    paths.append("/" + "/".join(parts))
        return paths

    def _install_package(self, package: Package) -> bool:
        """``opkg_install_pkg``."""
        if package.installed:
            if not self._satisfy_dependencies(package):
                return False
            self.log.notice(f"Package {package.name} is already installed on {DEST}.\n")
            return True
        old = self.db.installed_named(package.name)
        version = render_version(package.version)
        if old is not None:
            self.log.notice(
                f"Upgrading {package.name} on {DEST} from "
                f"{render_version(old.version)} to {version}...\n"
            )
            old.want = False
        else:
            self.log.notice(f"Installing {package.name} ({version}) to {DEST}...\n")
        package.want = True
        if not self._check_conflicts(package):
            return False
        blob = self._fetch_package(package)
        if blob is None:
            return False
        try:
            contents = read_ipk(blob)
            paths = self._data_paths(contents.data)
        except (ValueError, OSError, EOFError) as exc:
            self.log.error(
                "opkg_install_pkg", f"Failed to unpack control files from {package.name}: {exc}.\n"
            )
            return False
        if not self._satisfy_dependencies(package):
            return False
        if package.installed:
            return True  # a circular dependency installed it for us
        if not self._check_clashes(package, paths, old):
            return False
        if old is not None:
            old.installed = False
            for path in old.files:
                self.db.file_owner.pop(path, None)
        try:
            installed_files = ibtool_rootfs.extract_data(contents.data, self.root)
        except (ibtool_rootfs.UnsafeArchiveError, ValueError, OSError, EOFError) as exc:
            self.log.error(
                "opkg_install_pkg",
                f"Failed to extract data files for {package.name}. Package debris may remain!\n",
            )
            self.log.error("opkg_install_pkg", f"{exc}\n")
            return False
        package.control = contents.control
        package.extra_control = contents.control_members
        package.files = installed_files
        for path in installed_files:
            self.db.file_owner[path] = package
        package.installed = True
        self.unpacked.append(package)
        return True

    def _install_by_name(self, name: str) -> bool:
        old = self.db.installed_named(name)
        new = self._best_candidate(name, lambda p: p.name == name, quiet=False)
        if new is None:
            self.log.notice(f"Unknown package '{name}'.\n")
            return False
        new.flags.add("user")
        if old is not None:
            order = compare_versions(new.version, old.version)
            if order == 0:
                self.log.notice(
                    f"Package {old.name} ({render_version(old.version)}) installed in {DEST} is up "
                    "to date.\n"
                )
                return True
            if order < 0:
                self.log.notice(
                    f"Not downgrading package {old.name} on {DEST} from "
                    f"{render_version(old.version)} to {render_version(new.version)}.\n"
                )
                return True
        return self._install_package(new)

    def install(self, names: list[str]) -> bool:
        """``opkg install <names>``; every name is tried, failures are collected."""
        self.cli_args = names
        ok = True
        for name in names:
            if not self._install_by_name(name):
                self.log.error("opkg_install_cmd", f"Cannot install package {name}.\n")
                ok = False
        for package in self.unpacked:
            self.log.notice(f"Configuring {package.name}.\n")
        return ok

    def install_file(self, path: Path) -> bool:
        """``opkg install ./x.ipk``: the package comes from the file, not from a feed."""
        try:
            fields = read_ipk(path.read_bytes()).fields
        except (ValueError, OSError) as exc:
            self.log.error("opkg_prepare_url_for_install", f"Failed to read {path}: {exc}.\n")
            return False
        package = self.db.add(Package(fields=fields, local_file=path))
        return self.install([package.name])


# --- the on-device database -------------------------------------------------------------------

_STATUS_FLAGS = ("hold", "noprune", "prefer", "user")


def _status_line(package: Package, keep_user: bool) -> str:
    flags = [f for f in _STATUS_FLAGS if f in package.flags and (keep_user or f != "user")]
    return f"install {','.join(flags) or 'ok'} installed"


def status_stanza(package: Package, installed_time: int, keep_user: bool, root: Path) -> str:
    """``pkg_print_status`` field order (research §3.3)."""
    f = package.fields
    lines = [f"Package: {package.name}"]
    if f.get("ABIVersion"):
        lines.append(f"ABIVersion: {f['ABIVersion']}")
    lines.append(f"Version: {render_version(package.version)}")
    if package.depends:
        lines.append("Depends: " + ", ".join(render_depends(c) for c in package.depends))
    if package.provides:
        lines.append("Provides: " + ", ".join(package.provides))
    if package.replaces:
        lines.append("Replaces: " + ", ".join(package.replaces))
    if package.conflicts:
        lines.append("Conflicts: " + ", ".join(c[0].render() for c in package.conflicts))
    lines.append(f"Status: {_status_line(package, keep_user)}")
    if f.get("Essential") == "yes":
        lines.append("Essential: yes")
    if package.architecture:
        lines.append(f"Architecture: {package.architecture}")
    conffiles = [
        line.strip() for line in package.extra_control.get("conffiles", b"").decode().splitlines()
    ]
    conffiles = [c for c in conffiles if c]
    if conffiles:
        lines.append("Conffiles:")
        for path in conffiles:
            on_disk = ibtool_rootfs.resolve_in_root(root, path)
            digest = hashlib.sha256(on_disk.read_bytes()).hexdigest() if on_disk.is_file() else ""
            lines.append(f" {path} {digest}")
    lines.append(f"Installed-Time: {installed_time}")
    if package.auto_installed:
        lines.append("Auto-Installed: yes")
    if f.get("Alternatives"):
        lines.append(f"Alternatives: {f['Alternatives']}")
    return "\n".join(lines) + "\n"


def write_database(db: FeedDatabase, root: Path, installed_time: int, keep_user: bool) -> None:
    """``/usr/lib/opkg/status`` and ``info/<pkg>.control|.list|.conffiles`` as a finished
    rootfs has them (maintainer scripts removed, ``Installed-Time`` clamped, §3.3)."""
    opkg_dir = ibtool_rootfs.resolve_in_root(root, "usr/lib/opkg")
    info = opkg_dir / "info"
    info.mkdir(parents=True, exist_ok=True)
    packages = sorted(db.installed(), key=lambda p: p.name)
    for package in packages:
        (info / f"{package.name}.control").write_bytes(package.control)
        (info / f"{package.name}.list").write_text("".join(f"{p}\n" for p in sorted(package.files)))
        if package.extra_control.get("conffiles"):
            (info / f"{package.name}.conffiles").write_bytes(package.extra_control["conffiles"])
    (opkg_dir / "status").write_text(
        "\n".join(status_stanza(p, installed_time, keep_user, root) for p in packages)
    )


# --- queries ----------------------------------------------------------------------------------


def list_installed(db: FeedDatabase, strip_abi: bool) -> str:
    rows = sorted(db.installed(), key=lambda p: p.name)
    return "".join(
        f"{p.strip_abi_name() if strip_abi else p.name} - {render_version(p.version)}\n"
        for p in rows
    )


def list_available(db: FeedDatabase) -> str:
    """``opkg list --size``: ``name - version - size - description``."""
    rows = sorted(db.available(), key=lambda p: p.name)
    out = []
    for p in rows:
        line = f"{p.name} - {render_version(p.version)} - {p.size}"
        if p.description:
            line += f" - {p.description}"
        out.append(line + "\n")
    return "".join(out)


def depends(db: FeedDatabase, pattern: str) -> str:
    """``opkg depends -A <pattern>``."""
    out = []
    for p in sorted(db.available(), key=lambda p: p.name):
        if fnmatchcase(p.name, pattern):
            out.append(f"{p.name} depends on:\n")
            out.extend(f"\t{render_depends(c)}\n" for c in p.depends)
    return "".join(out)


def whatdepends(db: FeedDatabase, pattern: str) -> str:
    """``opkg whatdepends -A <pattern>`` (direct dependents of the root set)."""
    available = sorted(db.available(), key=lambda p: p.name)
    roots = [p for p in available if fnmatchcase(p.name, pattern)]
    marked = {n for p in roots for n in (p.name, *p.provides)}
    out = ["Root set:\n", *(f"  {p.name}\n" for p in roots), "What depends on root set\n"]
    for p in available:
        if p.name in marked:
            continue
        for compound in p.depends:
            hit = next((d for d in compound if d.name in marked), None)
            if hit is None:
                continue
            line = f"\t{p.name} {render_version(p.version)}\tdepends on {hit.name}"
            if hit.op:
                line += f" ({hit.op} {hit.version})"
            if not any(
                hit.satisfied_by(c.version)
                for n in db.provided_by.get(hit.name, [])
                for c in db.by_name.get(n, [])
            ):
                line += " unsatisfiable"
            out.append(line + "\n")
            break
    return "".join(out)
