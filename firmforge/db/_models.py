"""The ORM model of a build attempt, its status enum and the UTC datetime column type."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Dialect,
    Enum,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "BuildRecord",
    "BuildRequestRow",
    "BuildStatus",
    "DownloadRow",
    "PackageRequestRow",
    "QueueSampleRow",
    "ReportRow",
    "UTCDateTime",
    "WorkerTokenRow",
]


class BuildStatus(StrEnum):
    """Where a build attempt is; ``done`` and ``failed`` are final."""

    QUEUED = "queued"
    STARTED = "started"
    DONE = "done"
    FAILED = "failed"


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime that always comes back in UTC, on every backend.

    PostgreSQL stores ``timestamptz`` and returns it in the session's time zone; SQLite has no
    time zones, so the value is stored as naive UTC and UTC is attached again on the way out.
    Naive datetimes are refused: a time without a zone is a bug waiting for a DST change.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: give it a time zone")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Plain JSON on every backend (not JSONB): objects keep their key order (a manifest, the stage
# timings) and read back the same from SQLite and PostgreSQL. Python None is stored as SQL NULL.
_JSON = JSON(none_as_null=True)


class Base(DeclarativeBase):
    """Declarative base; constraint names are fixed so migrations can refer to them."""

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class BuildRecord(Base):
    """One attempt at building one request; a failed request may be attempted again later.

    ``stage`` is the last stage reached (the failing one for a failed build), ``detail`` the
    error or ``"done"``. ``duration_seconds`` is ``finished_at - started_at`` (None when the
    build never started); the wait in the queue is ``started_at - enqueued_at``.
    """

    __tablename__ = "builds"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    request_hash: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[BuildStatus] = mapped_column(
        # A VARCHAR, not a native enum or CHECK: a new status is then a code change only.
        Enum(
            BuildStatus,
            native_enum=False,
            create_constraint=False,
            length=16,
            values_callable=lambda statuses: [status.value for status in statuses],
        ),
        index=True,
    )
    stage: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    request: Mapped[dict[str, Any]] = mapped_column(_JSON)
    distro: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128))
    profile: Mapped[str] = mapped_column(String(255))
    packages: Mapped[list[str]] = mapped_column(_JSON)
    worker: Mapped[str | None] = mapped_column(String(255))
    imagebuilder: Mapped[dict[str, Any] | None] = mapped_column(_JSON)
    manifest: Mapped[dict[str, Any] | None] = mapped_column(_JSON)
    images: Mapped[list[dict[str, Any]] | None] = mapped_column(_JSON)
    bin_dir: Mapped[str | None] = mapped_column(String(255))
    stage_timings: Mapped[dict[str, float]] = mapped_column(_JSON)
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    build_cmd: Mapped[list[str] | None] = mapped_column(_JSON)

    def __repr__(self) -> str:
        return (
            f"<BuildRecord id={self.id} {self.request_hash[:12]} {self.status}"
            f" stage={self.stage!r}>"
        )


class DownloadRow(Base):
    """How often one stored file was downloaded on one UTC day.

    The key is (day, bin_dir, file); distro, version, target and profile are copied from the
    build record when the row is created (empty when no record was found), so statistics need
    no join and survive the build record.
    """

    __tablename__ = "download_counts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    bin_dir: Mapped[str] = mapped_column(String(64), primary_key=True)
    file: Mapped[str] = mapped_column(String(255), primary_key=True)
    distro: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128))
    profile: Mapped[str] = mapped_column(String(255))
    downloads: Mapped[int] = mapped_column(Integer)

    def __repr__(self) -> str:
        return f"<DownloadRow {self.day} {self.bin_dir[:12]}/{self.file} {self.downloads}>"


class ReportRow(Base):
    """One report from a router after an upgrade: did the image work (``success``) or not.

    The release (version, target, profile) is stored with it, so the aggregation needs no join;
    ``request_hash`` is the build the image came from when the router named it. ``message`` is
    plain text as the router sent it (never rendered as markup).
    """

    __tablename__ = "device_reports"
    __table_args__ = (Index(None, "version", "target", "profile"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    request_hash: Mapped[str | None] = mapped_column(String(64))
    distro: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128))
    profile: Mapped[str] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text)

    def __repr__(self) -> str:
        release = f"{self.version} {self.target} {self.profile}"
        return f"<ReportRow id={self.id} {release} {self.outcome}>"


class BuildRequestRow(Base):
    """How many build requests for one hash had one ``outcome`` on one UTC day.

    ``outcome`` is ``new`` (queued a build), ``cache_hit`` (answered by a finished build) or
    ``failed`` (answered by a failed build). The release fields are copied in, as for
    downloads, so statistics need no join.
    """

    __tablename__ = "build_requests"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    distro: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128))
    profile: Mapped[str] = mapped_column(String(255))
    requests: Mapped[int] = mapped_column(Integer)

    def __repr__(self) -> str:
        key = f"{self.day} {self.request_hash[:12]} {self.outcome}"
        return f"<BuildRequestRow {key} {self.requests}>"


class PackageRequestRow(Base):
    """How many build requests on one UTC day added ``package`` to their device's defaults."""

    __tablename__ = "build_request_packages"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    package: Mapped[str] = mapped_column(String(255), primary_key=True)
    requests: Mapped[int] = mapped_column(Integer)

    def __repr__(self) -> str:
        return f"<PackageRequestRow {self.day} {self.package} {self.requests}>"


class QueueSampleRow(Base):
    """The build queue's length at one moment (the sampler writes one every interval)."""

    __tablename__ = "queue_samples"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    sampled_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    length: Mapped[int] = mapped_column(Integer)

    def __repr__(self) -> str:
        return f"<QueueSampleRow {self.sampled_at.isoformat()} {self.length}>"


class WorkerTokenRow(Base):
    """A remote build worker's credential. Only the token's SHA-256 is kept: a stolen database
    lets nobody upload. A revoked token stays listed (who had access, until when)."""

    __tablename__ = "worker_tokens"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"<WorkerTokenRow {self.name}{' revoked' if self.revoked_at else ''}>"
