"""Garbage collection of the store: retention, then a disk budget.

A build directory goes when it is older than the retention; then, while the store is over its
budget, the least downloaded go first, the oldest first among equals. A build published or
served within the last ``grace`` seconds stays (it is being read, or about to be), and so do
directories being written (``LocalStore`` stages them under dot-names, which are never
candidates). A directory is renamed away before it is deleted, so nobody sees half of it; a
download already under way keeps reading the open file to its end (POSIX keeps an unlinked
file's data while it is open).

The server runs ``collect`` every ``store_gc_interval`` seconds. A collected build's job is
dropped from Redis, so the next request for it builds it again instead of answering with
files that are gone.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from firmforge.db import Database
from firmforge.db._models import DownloadRow
from firmforge.store import LocalStore

__all__ = ["GcReport", "collect", "download_totals"]

log = logging.getLogger(__name__)

_STALE_STAGING = 86400.0
"""Seconds after which a staging directory is a crash's leftover, not a publish under way."""


@dataclass
class GcReport:
    removed: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    kept_bytes: int = 0


@dataclass(frozen=True)
class _Build:
    bin_dir: str
    bytes: int
    published: float
    downloads: int


def download_totals(database: Database) -> dict[str, int]:
    """Downloads per build directory, all days together."""
    query = select(DownloadRow.bin_dir, func.sum(DownloadRow.downloads)).group_by(
        DownloadRow.bin_dir)
    with Session(database.engine) as session:
        return {bin_dir: int(total or 0) for bin_dir, total in session.execute(query)}


def collect(
    store: LocalStore,
    *,
    max_bytes: int,
    max_age: float,
    grace: float,
    downloads: Callable[[], dict[str, int]],
    on_removed: Callable[[str], None] = lambda _bin_dir: None,
) -> GcReport:
    """Remove expired builds, then the least wanted until the store fits ``max_bytes``."""
    now = time.time()
    _clear_stale_staging(store, now)
    counts = downloads()
    builds = [
        _Build(bin_dir, size, published, counts.get(bin_dir, 0))
        for bin_dir, size, published in store.builds()
    ]
    report = GcReport()
    collectable = [b for b in builds if now - max(b.published, store.last_served(b.bin_dir))
                   > grace]
    expired = [b for b in collectable if now - b.published > max_age]
    total = sum(b.bytes for b in builds)
    for build in expired:
        total -= _remove(store, build, report, on_removed)
    if total > max_bytes:
        remaining = sorted((b for b in collectable if b not in expired),
                           key=lambda b: (b.downloads, b.published))
        for build in remaining:
            if total <= max_bytes:
                break
            total -= _remove(store, build, report, on_removed)
    if total > max_bytes:
        log.warning("store holds %d bytes, over its budget of %d: the rest is in use", total,
                    max_bytes)
    report.kept_bytes = total
    return report


def _remove(store: LocalStore, build: _Build, report: GcReport,
            on_removed: Callable[[str], None]) -> int:
    if not store.remove(build.bin_dir):
        return 0
    log.info("store GC removed %s (%d bytes, %d downloads)", build.bin_dir, build.bytes,
             build.downloads)
    report.removed.append(build.bin_dir)
    report.freed_bytes += build.bytes
    on_removed(build.bin_dir)
    return build.bytes


def _clear_stale_staging(store: LocalStore, now: float) -> None:
    for path in _staging_dirs(store):
        try:
            if now - path.stat().st_mtime > _STALE_STAGING:
                shutil.rmtree(path, ignore_errors=True)
        except FileNotFoundError:
            continue


def _staging_dirs(store: LocalStore) -> Iterable[Path]:
    return (p for p in store.root.iterdir() if p.name.startswith(".") and p.is_dir())
