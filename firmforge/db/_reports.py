"""Device reports: storing one, and the success/failure counts per release read back.

Used by ``Database``; validation, rate limiting and release channels live in the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from firmforge.db._models import ReportRow

__all__ = ["OUTCOMES", "ReportCounts", "add_report", "report_counts"]

OUTCOMES = frozenset({"success", "failure"})
"""What a router may report."""


@dataclass(frozen=True)
class ReportCounts:
    """How many routers running ``version`` on ``target``/``profile`` reported each outcome."""

    version: str
    target: str
    profile: str
    successes: int
    failures: int

    @property
    def reports(self) -> int:
        return self.successes + self.failures

    @property
    def failure_rate(self) -> float:
        """Failures over all reports; 0.0 without reports."""
        return self.failures / self.reports if self.reports else 0.0


def add_report(
    session: Session,
    *,
    created_at: datetime,
    distro: str,
    version: str,
    target: str,
    profile: str,
    outcome: str,
    message: str | None = None,
    request_hash: str | None = None,
) -> int:
    """Store one report and return its id."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, got {outcome!r}")
    row = ReportRow(
        created_at=created_at,
        request_hash=request_hash,
        distro=distro,
        version=version,
        target=target,
        profile=profile,
        outcome=outcome,
        message=message,
    )
    session.add(row)
    session.flush()
    return row.id


def report_counts(
    session: Session,
    *,
    version: str | None = None,
    target: str | None = None,
    profile: str | None = None,
) -> list[ReportCounts]:
    """Counts per version + target + profile, ordered by those; ``None`` filters nothing."""
    successes = func.sum(case((ReportRow.outcome == "success", 1), else_=0))
    failures = func.sum(case((ReportRow.outcome == "failure", 1), else_=0))
    keys = (ReportRow.version, ReportRow.target, ReportRow.profile)
    query = select(*keys, successes, failures).group_by(*keys).order_by(*keys)
    for column, value in zip(keys, (version, target, profile), strict=True):
        if value is not None:
            query = query.where(column == value)
    return [
        ReportCounts(v, t, p, int(s or 0), int(f or 0))
        for v, t, p, s, f in session.execute(query)
    ]
