"""``Database``: the engine, migrations and the build-record repository, one transaction each."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from firmforge.db._downloads import DownloadCount, DownloadStats, add_downloads, download_stats
from firmforge.db._engine import WRITE_OPTIONS, make_engine
from firmforge.db._migrate import upgrade
from firmforge.db._models import BuildRecord, BuildStatus
from firmforge.db._reports import ReportCounts, add_report, report_counts

__all__ = ["Database"]

_FINAL = frozenset({BuildStatus.DONE, BuildStatus.FAILED})


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Database:
    """Build records in SQLite (``sqlite:///path``) or PostgreSQL (``postgresql+psycopg://…``).

    Every method is its own short transaction and returns plain, detached ``BuildRecord``
    objects that stay readable after it returns. ``clock`` returns the aware "now" (a seam for
    tests); times are stored and returned in UTC.

    Changing a build id that does not exist raises ``LookupError``. A done or failed attempt is
    final and changing it raises ``ValueError``: building again is a new ``record_queued``.
    """

    def __init__(self, url: str, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._url = make_url(url)
        self._engine = make_engine(self._url)
        self._clock = clock
        self._read = sessionmaker(self._engine, expire_on_commit=False)
        self._write = sessionmaker(
            self._engine.execution_options(**WRITE_OPTIONS), expire_on_commit=False
        )

    def __repr__(self) -> str:
        return f"Database({self._url.render_as_string(hide_password=True)!r})"

    @property
    def engine(self) -> Engine:
        return self._engine

    def migrate(self) -> None:
        """Bring the schema to the newest revision; a no-op when it is there already."""
        upgrade(self._engine)

    def dispose(self) -> None:
        """Close every pooled connection (at shutdown, or in tests)."""
        self._engine.dispose()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """One write transaction, for the db package's own table modules (on SQLite it takes
        the write lock up front, so concurrent writers queue instead of failing)."""
        with self._write.begin() as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session, for the db package's own table modules."""
        with self._read() as session:
            yield session

    # -- writes ----------------------------------------------------------------------------

    def record_queued(
        self,
        request_hash: str,
        request: dict[str, Any],
        distro: str,
        version: str,
        target: str,
        profile: str,
        packages: Sequence[str],
        enqueued_at: datetime | None = None,
    ) -> int:
        """Start a new attempt for ``request_hash`` and return its id.

        ``enqueued_at`` is when the request entered the queue (the worker records the attempt
        when it takes the job, so queue waiting time is start minus this); default now.
        """
        if enqueued_at is not None and enqueued_at.tzinfo is None:
            raise ValueError("enqueued_at must be timezone-aware")
        record = BuildRecord(
            request_hash=request_hash,
            status=BuildStatus.QUEUED,
            request=request,
            distro=distro,
            version=version,
            target=target,
            profile=profile,
            packages=list(packages),
            stage_timings={},
            enqueued_at=enqueued_at or self._now(),
        )
        with self._write.begin() as session:
            session.add(record)
            session.flush()
            return record.id

    def record_started(self, build_id: int, worker: str) -> None:
        """A worker took the build; a restart (abandoned job retried) begins the stages anew."""
        with self._writing(build_id) as record:
            record.status = BuildStatus.STARTED
            record.worker = worker
            record.started_at = self._now()
            record.stage = None
            record.stage_timings = {}

    def record_stage(self, build_id: int, stage: str, seconds: float) -> None:
        """``stage`` finished after ``seconds``; merged into ``stage_timings``."""
        with self._writing(build_id) as record:
            record.stage = stage
            record.stage_timings = {**record.stage_timings, stage: float(seconds)}

    def record_done(
        self,
        build_id: int,
        *,
        manifest: dict[str, Any],
        images: list[dict[str, Any]],
        bin_dir: str,
        imagebuilder: dict[str, Any],
        build_cmd: Sequence[str],
    ) -> None:
        """The build succeeded: ``detail`` becomes ``"done"`` and its outputs are kept."""
        with self._writing(build_id) as record:
            record.status = BuildStatus.DONE
            record.detail = "done"
            record.manifest = manifest
            record.images = images
            record.bin_dir = bin_dir
            record.imagebuilder = imagebuilder
            record.build_cmd = list(build_cmd)
            self._finish(record)

    def record_failed(self, build_id: int, *, stage: str, detail: str) -> None:
        """The build failed in ``stage``; ``detail`` is the error as users will read it."""
        with self._writing(build_id) as record:
            record.status = BuildStatus.FAILED
            record.stage = stage
            record.detail = detail
            self._finish(record)

    def add_downloads(self, counts: Iterable[DownloadCount]) -> None:
        """Add download counts (one upsert, one transaction); counts for a known day and file
        are added to it, a new row takes its release fields from the first count."""
        with self._write.begin() as session:
            add_downloads(session, counts)

    def add_report(
        self,
        *,
        distro: str,
        version: str,
        target: str,
        profile: str,
        outcome: str,
        message: str | None = None,
        request_hash: str | None = None,
    ) -> int:
        """Store a router's report (``outcome`` ``success`` or ``failure``) and return its id."""
        with self._write.begin() as session:
            return add_report(
                session, created_at=self._now(), distro=distro, version=version,
                target=target, profile=profile, outcome=outcome, message=message,
                request_hash=request_hash,
            )

    # -- reads -----------------------------------------------------------------------------

    def get(self, build_id: int) -> BuildRecord | None:
        """One attempt by id, or None."""
        with self._read() as session:
            return session.get(BuildRecord, build_id)

    def latest_build(self, request_hash: str) -> BuildRecord | None:
        """The newest attempt at ``request_hash``, whatever its status."""
        query = select(BuildRecord).where(BuildRecord.request_hash == request_hash)
        return self._first(query.order_by(BuildRecord.id.desc()).limit(1))

    def latest_done(self, request_hash: str) -> BuildRecord | None:
        """The newest successful attempt at ``request_hash``."""
        query = select(BuildRecord).where(
            BuildRecord.request_hash == request_hash, BuildRecord.status == BuildStatus.DONE
        )
        return self._first(query.order_by(BuildRecord.id.desc()).limit(1))

    def count_by_status(self) -> dict[str, int]:
        """Number of attempts per status, every status present (zero included)."""
        counts = dict.fromkeys((status.value for status in BuildStatus), 0)
        query = select(BuildRecord.status, func.count()).group_by(BuildRecord.status)
        with self._read() as session:
            for status, count in session.execute(query):
                counts[BuildStatus(status).value] = count
        return counts

    def recent(self, limit: int) -> list[BuildRecord]:
        """The ``limit`` newest attempts, newest first."""
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        query = select(BuildRecord).order_by(BuildRecord.id.desc()).limit(limit)
        with self._read() as session:
            return list(session.scalars(query))

    def download_stats(self, first: date, last: date, top: int = 10) -> DownloadStats:
        """Downloads per day, the ``top`` files and per version/target/profile, ``first`` to
        ``last`` (UTC days, inclusive)."""
        with self._read() as session:
            return download_stats(session, first, last, top)

    def report_counts(
        self,
        *,
        version: str | None = None,
        target: str | None = None,
        profile: str | None = None,
    ) -> list[ReportCounts]:
        """Success/failure counts per version + target + profile, optionally filtered."""
        with self._read() as session:
            return report_counts(session, version=version, target=target, profile=profile)

    # -- helpers ---------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("the clock returned a naive datetime")
        return now.astimezone(UTC)

    def _finish(self, record: BuildRecord) -> None:
        record.finished_at = self._now()
        if record.started_at is not None:
            elapsed = record.finished_at - record.started_at
            record.duration_seconds = max(elapsed.total_seconds(), 0.0)

    @contextmanager
    def _writing(self, build_id: int) -> Iterator[BuildRecord]:
        """The record, locked for this transaction; a finished build is never changed again."""
        with self._write.begin() as session:
            record = session.get(BuildRecord, build_id, with_for_update=True)
            if record is None:
                raise LookupError(f"no build record with id {build_id}")
            if record.status in _FINAL:
                raise ValueError(f"build {build_id} is already {record.status}")
            yield record

    def _first(self, query: Select[BuildRecord]) -> BuildRecord | None:
        with self._read() as session:
            return session.scalars(query).first()
