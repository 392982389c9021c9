"""Statistics for the /stats page: build requests per day and outcome, the packages they added,
queue-length samples, and the aggregates read back over a window of UTC days.

The counting itself lives in ``firmforge.build_stats`` (requests, in memory, flushed as one
upsert) and ``firmforge.queue_sampler``; build durations come from the build records and
device reports from ``device_reports``, so nothing is stored twice.

Usage::

    from datetime import date
    from firmforge.db import Database
    from firmforge.db._stats import RequestCount, add_build_requests, build_stats

    db = Database("sqlite:///data/firmforge.db")
    db.migrate()
    add_build_requests(db, [RequestCount(date(2026, 7, 1), "0f" * 32, "cache_hit", 3)])
    stats = build_stats(db, date(2026, 7, 1), date(2026, 7, 1))
    assert stats.per_day[0].cache_hits == 3
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import case, delete, func, insert, select
from sqlalchemy.orm import Session

from firmforge.db._database import Database
from firmforge.db._models import (
    BuildRecord,
    BuildRequestRow,
    BuildStatus,
    PackageRequestRow,
    QueueSampleRow,
    ReportRow,
)
from firmforge.db._upsert import add_to_counters

__all__ = [
    "DURATION_EDGES",
    "OUTCOMES",
    "BuildStats",
    "DayRequests",
    "QueuePoint",
    "RequestCount",
    "add_build_requests",
    "add_queue_sample",
    "build_stats",
    "prune_queue_samples",
]

OUTCOMES = ("new", "cache_hit", "failed")
"""How a build request was answered: it queued a build, a finished build, a failed build."""

DURATION_EDGES = (10, 30, 60, 120, 300, 600, 1800)
"""Upper bounds (seconds) of the build-time histogram's buckets; the last bucket is open."""

_QUEUE_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400)
"""Seconds one queue-length point may stand for; the smallest that keeps the series short."""

_QUEUE_POINTS = 400


@dataclass(frozen=True)
class RequestCount:
    """``count`` more requests for ``request_hash`` answered with ``outcome`` on ``day`` (UTC),
    with the request's release and the packages it added to its device's defaults."""

    day: date
    request_hash: str
    outcome: str
    count: int
    distro: str = ""
    version: str = ""
    target: str = ""
    profile: str = ""
    packages: tuple[str, ...] = ()


@dataclass(frozen=True)
class DayRequests:
    day: date
    new: int = 0
    cache_hits: int = 0
    failed: int = 0

    @property
    def requests(self) -> int:
        return self.new + self.cache_hits + self.failed


@dataclass(frozen=True)
class QueuePoint:
    """The queue over ``seconds`` from ``start``: mean and largest sampled length (None:
    no sample, the server was not running)."""

    start: datetime
    seconds: int
    mean: float | None
    max: int | None


@dataclass(frozen=True)
class BuildStats:
    """Everything the statistics page plots, from ``first`` to ``last`` (UTC days)."""

    first: date
    last: date
    per_day: list[DayRequests]
    """Every day of the period, oldest first, zeros included."""
    durations: list[tuple[str, int]]
    """Finished builds per build-time bucket (label, count), fastest first."""
    duration_quantiles: dict[str, float | None]
    """``median`` and ``p90`` build time in seconds (None without builds)."""
    builds_done: int
    builds_failed: int
    queue: list[QueuePoint]
    devices: list[tuple[str, str, int]]
    """(target, profile, requests), most requested first."""
    packages: list[tuple[str, int]]
    """(package added to the defaults, requests), most requested first."""
    versions: list[tuple[str, str, int]]
    """(distro, version, requests), most requested first."""
    reports: list[tuple[str, int, int]]
    """(version, successes, failures) of device reports, by version."""
    totals: dict[str, int] = field(default_factory=dict)


# -- writes ------------------------------------------------------------------------------------



def add_build_requests(database: Database, counts: Iterable[RequestCount]) -> None:
    """Add request counts in one transaction: one upsert per table, rows in key order (so
    concurrent writers lock them in the same order); a known row keeps its release fields."""
    requests: dict[tuple[date, str, str], dict[str, Any]] = {}
    packages: dict[tuple[date, str], int] = {}
    for item in counts:
        if item.count <= 0:
            raise ValueError(f"a request count must be positive, got {item.count}")
        if item.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {item.outcome!r}")
        key = (item.day, item.request_hash, item.outcome)
        row = requests.setdefault(key, {
            "day": item.day, "request_hash": item.request_hash, "outcome": item.outcome,
            "distro": item.distro, "version": item.version, "target": item.target,
            "profile": item.profile, "requests": 0,
        })
        row["requests"] += item.count
        for name in dict.fromkeys(item.packages):
            packages[(item.day, name)] = packages.get((item.day, name), 0) + item.count
    if not requests:
        return
    with database.writing() as session:
        add_to_counters(session, BuildRequestRow, [requests[k] for k in sorted(requests)],
                        ("day", "request_hash", "outcome"), "requests")
        if packages:
            rows = [{"day": d, "package": p, "requests": packages[(d, p)]}
                    for d, p in sorted(packages)]
            add_to_counters(session, PackageRequestRow, rows, ("day", "package"), "requests")


def add_queue_sample(database: Database, at: datetime, length: int) -> None:
    """The queue had ``length`` jobs waiting at ``at`` (aware)."""
    if length < 0:
        raise ValueError(f"a queue length cannot be negative, got {length}")
    with database.writing() as session:
        session.execute(insert(QueueSampleRow).values(sampled_at=at, length=length))


def prune_queue_samples(database: Database, before: datetime) -> int:
    """Forget samples older than ``before``; returns how many went."""
    with database.writing() as session:
        result = session.execute(delete(QueueSampleRow).where(QueueSampleRow.sampled_at < before))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


# -- reads -------------------------------------------------------------------------------------


def build_stats(database: Database, first: date, last: date, *, top: int = 10,
                now: datetime | None = None) -> BuildStats:
    """The aggregates of ``first`` .. ``last`` (UTC days, both included); ``top`` devices and
    packages. The queue series ends at ``now`` (default: the end of ``last``)."""
    if last < first:
        raise ValueError(f"empty period {first} .. {last}")
    if top < 1:
        raise ValueError(f"top must be positive, got {top}")
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
    with database.reading() as session:
        per_day = _per_day(session, first, last)
        done, failed, durations = _durations(session, start, end)
        stats = BuildStats(
            first=first,
            last=last,
            per_day=per_day,
            durations=_histogram(durations),
            duration_quantiles={"median": _quantile(durations, 0.5),
                                "p90": _quantile(durations, 0.9)},
            builds_done=done,
            builds_failed=failed,
            queue=_queue(session, start, end, min(end, now) if now else end),
            devices=_devices(session, first, last, top),
            packages=_packages(session, first, last, top),
            versions=_versions(session, first, last),
            reports=_reports(session, start, end),
        )
    stats.totals.update(
        new=sum(d.new for d in per_day),
        cache_hits=sum(d.cache_hits for d in per_day),
        failed=sum(d.failed for d in per_day),
    )
    return stats


def _period(first: date, last: date) -> tuple[Any, Any]:
    return BuildRequestRow.day >= first, BuildRequestRow.day <= last


def _per_day(session: Session, first: date, last: date) -> list[DayRequests]:
    days: dict[date, dict[str, int]] = {
        first + timedelta(days=n): {} for n in range((last - first).days + 1)}
    query = (select(BuildRequestRow.day, BuildRequestRow.outcome,
                    func.sum(BuildRequestRow.requests))
             .where(*_period(first, last))
             .group_by(BuildRequestRow.day, BuildRequestRow.outcome))
    for day, outcome, count in session.execute(query):
        days[day][outcome] = int(count)
    return [DayRequests(day, counts.get("new", 0), counts.get("cache_hit", 0),
                        counts.get("failed", 0)) for day, counts in sorted(days.items())]


def _durations(session: Session, start: datetime, end: datetime) -> tuple[int, int, list[float]]:
    """Done and failed builds that finished in the period, and the done ones' durations."""
    period = (BuildRecord.finished_at >= start, BuildRecord.finished_at < end)
    counts = dict(session.execute(
        select(BuildRecord.status, func.count()).where(*period).group_by(BuildRecord.status)
    ).all())
    durations = sorted(session.scalars(
        select(BuildRecord.duration_seconds).where(
            *period, BuildRecord.status == BuildStatus.DONE,
            BuildRecord.duration_seconds.is_not(None))
    ))
    return (int(counts.get(BuildStatus.DONE, 0)), int(counts.get(BuildStatus.FAILED, 0)),
            [float(d) for d in durations])


def _label(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


def _histogram(durations: Sequence[float]) -> list[tuple[str, int]]:
    counts = [0] * (len(DURATION_EDGES) + 1)
    for duration in durations:
        index = next((i for i, edge in enumerate(DURATION_EDGES) if duration < edge),
                     len(DURATION_EDGES))
        counts[index] += 1
    labels = [f"< {_label(DURATION_EDGES[0])}"]
    labels += [f"{_label(low)} – {_label(high)}"
               for low, high in pairwise(DURATION_EDGES)]
    labels.append(f"≥ {_label(DURATION_EDGES[-1])}")
    return list(zip(labels, counts, strict=True))


def _quantile(ordered: Sequence[float], q: float) -> float | None:
    """The nearest-rank quantile of sorted values."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _queue(session: Session, start: datetime, window_end: datetime,
           end: datetime) -> list[QueuePoint]:
    """Buckets sized for the whole window (the same window always plots alike), up to ``end``
    (now: no empty future)."""
    if end <= start:
        return []
    window = (window_end - start).total_seconds()
    seconds = next((b for b in _QUEUE_BUCKETS if window / b <= _QUEUE_POINTS),
                   _QUEUE_BUCKETS[-1])
    buckets: list[list[int]] = [
        [] for _ in range(math.ceil((end - start).total_seconds() / seconds))]
    query = select(QueueSampleRow.sampled_at, QueueSampleRow.length).where(
        QueueSampleRow.sampled_at >= start, QueueSampleRow.sampled_at < end)
    for at, length in session.execute(query):
        buckets[int((at - start).total_seconds() // seconds)].append(int(length))
    return [
        QueuePoint(start + timedelta(seconds=i * seconds), seconds,
                   sum(lengths) / len(lengths) if lengths else None,
                   max(lengths) if lengths else None)
        for i, lengths in enumerate(buckets)
    ]


def _devices(session: Session, first: date, last: date, top: int) -> list[tuple[str, str, int]]:
    total = func.sum(BuildRequestRow.requests)
    keys = (BuildRequestRow.target, BuildRequestRow.profile)
    query = (select(*keys, total).where(*_period(first, last), BuildRequestRow.profile != "")
             .group_by(*keys).order_by(total.desc(), *keys).limit(top))
    return [(t, p, int(n)) for t, p, n in session.execute(query)]


def _packages(session: Session, first: date, last: date, top: int) -> list[tuple[str, int]]:
    total = func.sum(PackageRequestRow.requests)
    query = (select(PackageRequestRow.package, total)
             .where(PackageRequestRow.day >= first, PackageRequestRow.day <= last)
             .group_by(PackageRequestRow.package)
             .order_by(total.desc(), PackageRequestRow.package).limit(top))
    return [(p, int(n)) for p, n in session.execute(query)]


def _versions(session: Session, first: date, last: date) -> list[tuple[str, str, int]]:
    total = func.sum(BuildRequestRow.requests)
    keys = (BuildRequestRow.distro, BuildRequestRow.version)
    query = (select(*keys, total).where(*_period(first, last), BuildRequestRow.version != "")
             .group_by(*keys).order_by(total.desc(), *keys))
    return [(d, v, int(n)) for d, v, n in session.execute(query)]


def _reports(session: Session, start: datetime, end: datetime) -> list[tuple[str, int, int]]:
    successes = func.sum(case((ReportRow.outcome == "success", 1), else_=0))
    failures = func.sum(case((ReportRow.outcome == "failure", 1), else_=0))
    query = (select(ReportRow.version, successes, failures)
             .where(ReportRow.created_at >= start, ReportRow.created_at < end)
             .group_by(ReportRow.version).order_by(ReportRow.version))
    return [(v, int(s or 0), int(f or 0)) for v, s, f in session.execute(query)]
