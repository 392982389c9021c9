"""Unpacking an ImageBuilder tarball without trusting its member names.

An ImageBuilder archive (research/imagebuilder-formats.md §1.1) is a ``.tar.xz`` (23.05) or
``.tar.zst`` (24.10+) holding exactly one top directory. ``unpack_archive`` streams it (the
archive is never held in memory) and writes every member itself instead of calling
``tarfile.extractall``, so that no member can reach outside the destination:

- names that are absolute, contain ``..``, or lie outside the single top directory are refused;
- only directories, regular files, symlinks and hard links are allowed (no devices, no fifos);
- nothing is ever written through a symlink: a member whose parent path is a symlink is refused;
- a hard link must name a regular file unpacked earlier from the same archive;
- a symlink must point inside the top directory, checked lexically while unpacking and again on
  the finished tree with ``realpath`` (a chain of links can escape where each link alone looks
  harmless);
- set-uid/set-gid/sticky bits and owners are dropped; modification times are kept, because
  ``make`` compares them.

Any violation refuses the whole archive with ``UpstreamError``; the caller unpacks into a
temporary directory and throws it away.
"""

from __future__ import annotations

import contextlib
import lzma
import os
import posixpath
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

import zstandard

from firmforge.errors import UpstreamError

__all__ = ["ARCHIVE_SUFFIXES", "archive_stem", "unpack_archive"]

ARCHIVE_SUFFIXES = (".tar.xz", ".tar.zst")
_CHUNK = 1 << 20
_DIR_MODE_MIN = 0o700  # we must be able to add to, walk and delete every directory
_FILE_MODE_MIN = 0o600  # and read (to clone) every file


def archive_stem(name: str) -> str:
    """``openwrt-imagebuilder-…Linux-x86_64.tar.zst`` → ``openwrt-imagebuilder-…Linux-x86_64``."""
    for suffix in ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    raise UpstreamError(f"Unsupported ImageBuilder archive {name!r}: expected .tar.xz or .tar.zst")


@contextlib.contextmanager
def _decompressed(path: Path, name: str) -> Iterator[BinaryIO]:
    archive_stem(name)  # refuses unknown formats
    with path.open("rb") as raw:
        if name.endswith(".tar.zst"):
            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            with reader:
                yield cast(BinaryIO, reader)
        else:
            with lzma.open(raw, "rb") as xz:
                yield cast(BinaryIO, xz)


def unpack_archive(archive: Path, destination: Path, *, label: str = "") -> Path:
    """Unpack ``archive`` into the empty directory ``destination``; return its top directory.

    ``label`` is the archive's real name: its suffix decides the decompressor, and error
    messages name it (defaults to the file name).
    """
    label = label or archive.name
    try:
        with (
            _decompressed(archive, label) as stream,
            tarfile.open(fileobj=stream, mode="r|") as tar,
        ):
            top = _Unpacker(destination, label).run(tar)
    except UpstreamError:
        raise
    except (
        tarfile.TarError,
        lzma.LZMAError,
        zstandard.ZstdError,
        EOFError,
        OverflowError,  # absurd mtimes
    ) as exc:
        raise UpstreamError(f"ImageBuilder archive {label} is unreadable: {exc}") from exc
    _check_symlinks(top, label)
    return top


class _Unpacker:
    def __init__(self, destination: Path, label: str) -> None:
        self.destination = destination
        self.label = label
        self.top: str | None = None
        self.dirs: set[str] = set()  # archive paths we created as directories
        self.files: set[str] = set()  # archive paths we wrote as regular files
        self.dir_times: list[tuple[Path, float]] = []

    def refuse(self, member: tarfile.TarInfo | str, why: str) -> UpstreamError:
        name = member if isinstance(member, str) else member.name
        return UpstreamError(f"Refusing ImageBuilder archive {self.label}: member {name!r} {why}")

    def run(self, tar: tarfile.TarFile) -> Path:
        for member in tar:
            parts = self.split(member, member.name)
            if not parts:
                continue  # "./" itself
            self.check_top(member, parts)
            relpath = "/".join(parts)
            self.prepare_parents(member, parts)
            target = self.destination / relpath
            if member.isdir():
                self.make_dir(member, relpath, target)
            elif member.isreg():
                self.write_file(tar, member, relpath, target)
            elif member.issym():
                self.make_symlink(member, parts, target)
            elif member.islnk():
                self.make_hardlink(member, relpath, target)
            else:
                raise self.refuse(member, "is a device, fifo or other special file")
        if self.top is None:
            raise UpstreamError(f"ImageBuilder archive {self.label} is empty")
        for path, mtime in reversed(self.dir_times):
            os.utime(path, (mtime, mtime))
        return self.destination / self.top

    def split(self, member: tarfile.TarInfo, name: str) -> list[str]:
        if "\x00" in name or "\\" in name:
            raise self.refuse(member, "has a forbidden character in its name")
        if name.startswith("/"):
            raise self.refuse(member, "has an absolute path")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self.refuse(member, "has '..' in its path")
        return parts

    def check_top(self, member: tarfile.TarInfo, parts: list[str]) -> None:
        if self.top is None:
            self.top = parts[0]
        elif parts[0] != self.top:
            raise self.refuse(member, f"lies outside the single top directory {self.top!r}")
        if len(parts) == 1 and not member.isdir():
            raise self.refuse(member, "lies outside the single top directory")

    def prepare_parents(self, member: tarfile.TarInfo, parts: list[str]) -> None:
        """Create missing parents; refuse when one exists as anything but our own directory."""
        for depth in range(1, len(parts)):
            relpath = "/".join(parts[:depth])
            if relpath in self.dirs:
                continue
            path = self.destination / relpath
            if os.path.lexists(path):
                raise self.refuse(member, f"would be written through {relpath!r}, not a directory")
            path.mkdir(mode=0o755)
            self.dirs.add(relpath)

    def clear_slot(self, member: tarfile.TarInfo, relpath: str, target: Path) -> None:
        """A later member of the same name replaces an earlier one, as tar does; dirs stay."""
        if relpath in self.dirs:
            raise self.refuse(member, "replaces a directory")
        if os.path.lexists(target):
            target.unlink()
            self.files.discard(relpath)

    def make_dir(self, member: tarfile.TarInfo, relpath: str, target: Path) -> None:
        if relpath not in self.dirs:
            self.clear_slot(member, relpath, target)
            target.mkdir(mode=0o755)
            self.dirs.add(relpath)
        target.chmod((member.mode & 0o777) | _DIR_MODE_MIN)
        self.dir_times.append((target, member.mtime))

    def write_file(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, relpath: str, target: Path
    ) -> None:
        self.clear_slot(member, relpath, target)
        source = tar.extractfile(member)
        if source is None:  # pragma: no cover - isreg() members always have data
            raise self.refuse(member, "has no data")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(target, flags, 0o600)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
        target.chmod((member.mode & 0o777) | _FILE_MODE_MIN)
        os.utime(target, (member.mtime, member.mtime))
        self.files.add(relpath)

    def make_symlink(self, member: tarfile.TarInfo, parts: list[str], target: Path) -> None:
        link = member.linkname
        if not link or "\x00" in link:
            raise self.refuse(member, "is a symlink without a target")
        if link.startswith("/"):
            raise self.refuse(member, f"is a symlink to the absolute path {link!r}")
        resolved = posixpath.normpath(posixpath.join(*parts[:-1], link))
        if resolved.split("/")[0] != self.top:  # "..", "." or another top directory
            raise self.refuse(member, f"is a symlink to {link!r}, outside the ImageBuilder")
        self.clear_slot(member, "/".join(parts), target)
        target.symlink_to(link)

    def make_hardlink(self, member: tarfile.TarInfo, relpath: str, target: Path) -> None:
        link_parts = self.split(member, member.linkname)
        link_relpath = "/".join(link_parts)
        if link_relpath not in self.files:
            raise self.refuse(
                member, f"is a hard link to {member.linkname!r}, not a file of this ImageBuilder"
            )
        self.clear_slot(member, relpath, target)
        os.link(self.destination / link_relpath, target, follow_symlinks=False)
        self.files.add(relpath)


def _check_symlinks(top: Path, label: str) -> None:
    """Every symlink of the finished tree, followed to the end, stays inside ``top``."""
    root = top.resolve()
    for dirpath, dirnames, filenames in os.walk(top):
        for name in (*dirnames, *filenames):
            path = Path(dirpath) / name
            if not path.is_symlink():
                continue
            member = path.relative_to(top.parent).as_posix()
            try:
                inside = path.resolve().is_relative_to(root)
            except (RuntimeError, OSError) as exc:  # a symlink loop
                raise UpstreamError(
                    f"Refusing ImageBuilder archive {label}: member {member!r} is a symlink "
                    f"that cannot be resolved ({exc})"
                ) from exc
            if not inside:
                raise UpstreamError(
                    f"Refusing ImageBuilder archive {label}: member {member!r} is a symlink "
                    f"that resolves outside the ImageBuilder"
                )
