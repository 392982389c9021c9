"""Private working copies of a pristine ImageBuilder, and its shared download pool.

A build writes into its ImageBuilder: the package index in ``packages/``, generated keys in
``keys/`` and at the top level (``key-build*``), ``.profiles.mk``, ``tmp/``, ``dl/``, the rootfs
staging under ``build_dir/``. Concurrent builds of one ImageBuilder therefore each get a clone:
directories are created anew and files are hard links to the pristine tree (cheap: no data is
copied), except where an ImageBuilder writes, which is copied (every top-level regular file and
everything under ``COPIED_DIRS``). Symlinks are recreated as they are.

Downloaded packages are shared through a per-ImageBuilder pool: ``dl/`` starts out as hard links
to the pool, and after a successful build new package files are linked back into it
(``link`` to a temporary name, then ``rename``, so readers never see a half-added file).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import stat
import sys
from pathlib import Path

__all__ = [
    "COPIED_DIRS",
    "POOLED_SUFFIXES",
    "clone_tree",
    "harvest_downloads",
    "remove_tree",
    "seed_downloads",
    "tree_bytes",
]

log = logging.getLogger(__name__)

COPIED_DIRS = frozenset({"packages", "keys", "build_dir"})
"""Top-level directories copied, not linked, into a workspace: the ImageBuilder rewrites files
in them (``packages/Packages``, generated keys) or works inside them (``build_dir/`` holds the
kernel build directory, where image recipes write; a recipe that rewrote a shipped file in
place through a hard link would corrupt the pristine tree for every later build). The bulk of
an ImageBuilder, ``staging_dir/`` host tools and ``target/linux`` recipes, is only read."""

POOLED_SUFFIXES = (".ipk", ".apk")
"""Only package files enter the download pool; opkg/apk index caches go stale and stay private."""


def clone_tree(pristine: Path, clone: Path) -> None:
    """Make ``clone`` (which must not exist) a private working copy of ``pristine``."""
    dir_stats: list[tuple[Path, os.stat_result]] = []
    clone.mkdir(mode=0o700)
    dir_stats.append((clone, pristine.stat()))
    stack: list[tuple[Path, Path, bool]] = [(pristine, clone, True)]
    while stack:
        source_dir, target_dir, top_level = stack.pop()
        with os.scandir(source_dir) as entries:
            for entry in entries:
                source = Path(entry.path)
                target = target_dir / entry.name
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode):
                    target.symlink_to(source.readlink())
                elif stat.S_ISDIR(info.st_mode):
                    if top_level and entry.name in COPIED_DIRS:
                        shutil.copytree(source, target, symlinks=True)
                    else:
                        target.mkdir(mode=0o700)
                        dir_stats.append((target, info))
                        stack.append((source, target, False))
                elif stat.S_ISREG(info.st_mode):
                    if top_level:
                        shutil.copy2(source, target, follow_symlinks=False)
                    else:
                        os.link(source, target, follow_symlinks=False)
    for path, info in reversed(dir_stats):  # children first: filling a dir changes its mtime
        path.chmod(stat.S_IMODE(info.st_mode) | 0o700)
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def seed_downloads(pool: Path, downloads: Path) -> int:
    """Hard-link every pooled package into ``downloads``; return how many."""
    downloads.mkdir(exist_ok=True)
    if not pool.is_dir():
        return 0
    count = 0
    with os.scandir(pool) as entries:
        for entry in entries:
            if _poolable(entry) and not os.path.lexists(downloads / entry.name):
                os.link(entry.path, downloads / entry.name, follow_symlinks=False)
                count += 1
    return count


def harvest_downloads(downloads: Path, pool: Path) -> int:
    """Link package files that ``downloads`` has and ``pool`` lacks into ``pool``; return count.

    A file the build replaced (a different inode under a pooled name, e.g. after the
    ImageBuilder refused a cached copy with a bad checksum) replaces the pooled one.
    """
    if not downloads.is_dir():
        return 0
    pool.mkdir(exist_ok=True)
    count = 0
    with os.scandir(downloads) as entries:
        for entry in entries:
            if not _poolable(entry):
                continue
            pooled = pool / entry.name
            try:
                if pooled.samefile(entry.path):
                    continue
            except FileNotFoundError:
                pass
            temporary = pool / f".add-{secrets.token_hex(8)}-{entry.name}"
            os.link(entry.path, temporary, follow_symlinks=False)
            temporary.replace(pooled)
            count += 1
    return count


def tree_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (each inode once), 0 if it does not exist."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            info = (Path(dirpath) / name).lstat()
            if stat.S_ISREG(info.st_mode) and (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def remove_tree(path: Path) -> None:
    """``rm -rf path``, also through directories a build left without write permission."""
    if not os.path.lexists(path):
        return
    if not path.is_dir() or path.is_symlink():
        path.unlink()
        return

    def make_writable_and_retry(_function: object, failed_name: str, _exc: object) -> None:
        failed = Path(failed_name)
        _add_owner_rwx(failed.parent)
        if failed.is_dir() and not failed.is_symlink():
            _add_owner_rwx(failed)
            shutil.rmtree(failed)
        else:
            failed.unlink()

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=make_writable_and_retry)
    else:
        shutil.rmtree(path, onerror=make_writable_and_retry)


def _add_owner_rwx(path: Path) -> None:
    path.chmod(stat.S_IMODE(path.lstat().st_mode) | 0o700)


def _poolable(entry: os.DirEntry[str]) -> bool:
    return (
        entry.is_file(follow_symlinks=False)
        and entry.name.endswith(POOLED_SUFFIXES)
        and not entry.name.startswith(".")
    )
