"""Download statistics: adding counts with one upsert, and reading them back per day, file and
release. Used by ``Database``; the counting itself lives in ``firmforge.downloads``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from firmforge.db._models import DownloadRow
from firmforge.db._upsert import add_to_counters

__all__ = [
    "DownloadCount",
    "DownloadStats",
    "FileDownloads",
    "ReleaseDownloads",
    "add_downloads",
    "download_stats",
]


@dataclass(frozen=True)
class DownloadCount:
    """``count`` more downloads of ``bin_dir/file`` on ``day`` (UTC), with its build's release."""

    day: date
    bin_dir: str
    file: str
    count: int
    distro: str = ""
    version: str = ""
    target: str = ""
    profile: str = ""


@dataclass(frozen=True)
class FileDownloads:
    bin_dir: str
    file: str
    version: str
    target: str
    profile: str
    downloads: int


@dataclass(frozen=True)
class ReleaseDownloads:
    """Downloads of one version, target or profile; the fields not grouped on are empty."""

    version: str
    target: str
    profile: str
    downloads: int


@dataclass(frozen=True)
class DownloadStats:
    """Downloads from ``first`` to ``last`` (UTC days, both included)."""

    first: date
    last: date
    per_day: list[tuple[date, int]]
    """Every day of the period, oldest first, zeros included."""
    top_files: list[FileDownloads]
    versions: list[ReleaseDownloads]
    targets: list[ReleaseDownloads]
    profiles: list[ReleaseDownloads]

    @property
    def total(self) -> int:
        return sum(count for _, count in self.per_day)


def add_downloads(session: Session, counts: Iterable[DownloadCount]) -> None:
    """Add ``counts`` with one ``INSERT … ON CONFLICT DO UPDATE`` (SQLite and PostgreSQL).

    Counts for the same key are summed first (a key may appear once per statement), and rows
    are written in key order so concurrent writers lock them in the same order.
    """
    merged: dict[tuple[date, str, str], DownloadCount] = {}
    for item in counts:
        if item.count <= 0:
            raise ValueError(f"a download count must be positive, got {item.count}")
        key = (item.day, item.bin_dir, item.file)
        known = merged.get(key)
        merged[key] = item if known is None else _plus(known, item.count)
    add_to_counters(session, DownloadRow, [_row(merged[key]) for key in sorted(merged)],
                    ("day", "bin_dir", "file"), "downloads")


def download_stats(session: Session, first: date, last: date, top: int) -> DownloadStats:
    """Totals per day, the ``top`` most downloaded files and the totals per version, target
    and profile (version + target + profile), from ``first`` to ``last`` inclusive."""
    if last < first:
        raise ValueError(f"empty period {first} .. {last}")
    if top < 0:
        raise ValueError(f"top must not be negative, got {top}")
    period = (DownloadRow.day >= first, DownloadRow.day <= last)
    total = func.sum(DownloadRow.downloads).label("total")

    per_day = dict.fromkeys((first + timedelta(days=n) for n in range((last - first).days + 1)), 0)
    for day, count in session.execute(select(DownloadRow.day, total).where(*period)
                                      .group_by(DownloadRow.day)):
        per_day[day] = int(count)

    file_columns = (DownloadRow.bin_dir, DownloadRow.file, DownloadRow.version,
                    DownloadRow.target, DownloadRow.profile)
    files = select(*file_columns, total).where(*period).group_by(*file_columns)
    top_files = [
        FileDownloads(bin_dir, file, version, target, profile, int(count))
        for bin_dir, file, version, target, profile, count in session.execute(
            _largest(files, total, top)
        )
    ]

    def grouped(*columns: Any) -> list[ReleaseDownloads]:
        query = select(*columns, total).where(*period).group_by(*columns)
        result = []
        for row in session.execute(_largest(query, total, None)):
            fields = dict(zip((column.key for column in columns), row[:-1], strict=True))
            result.append(ReleaseDownloads(fields.get("version", ""), fields.get("target", ""),
                                           fields.get("profile", ""), int(row[-1])))
        return result

    return DownloadStats(
        first=first,
        last=last,
        per_day=sorted(per_day.items()),
        top_files=top_files,
        versions=grouped(DownloadRow.version),
        targets=grouped(DownloadRow.target),
        profiles=grouped(DownloadRow.version, DownloadRow.target, DownloadRow.profile),
    )


def _largest(query: Select[Any], total: Any, limit: int | None) -> Select[Any]:
    """Largest total first; ties in the order of the grouped columns, so answers are stable."""
    ordered = query.order_by(total.desc(), *query.selected_columns[:-1])
    return ordered if limit is None else ordered.limit(limit)


def _plus(item: DownloadCount, count: int) -> DownloadCount:
    return DownloadCount(item.day, item.bin_dir, item.file, item.count + count, item.distro,
                         item.version, item.target, item.profile)


def _row(item: DownloadCount) -> dict[str, Any]:
    return {"day": item.day, "bin_dir": item.bin_dir, "file": item.file, "distro": item.distro,
            "version": item.version, "target": item.target, "profile": item.profile,
            "downloads": item.count}
