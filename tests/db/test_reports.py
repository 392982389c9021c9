"""Device reports in the database: stored as sent, counted per release."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from firmforge.db import Database, ReportCounts
from firmforge.db._models import ReportRow

X86 = ("24.10.2", "x86/64", "generic")
C7 = ("24.10.2", "ath79/generic", "tplink_archer-c7-v5")
OLD_C7 = ("23.05.5", "ath79/generic", "tplink_archer-c7-v5")


def _report(db: Database, release: tuple[str, str, str], outcome: str, **extra: str) -> int:
    version, target, profile = release
    return db.add_report(distro="openwrt", version=version, target=target, profile=profile,
                         outcome=outcome, **extra)


def test_a_report_is_stored_as_sent(db: Database):
    message = "<b>wifi</b> gone after upgrade; «ünïcode» ✓\nsecond line"
    report_id = _report(db, C7, "failure", message=message, request_hash="f" * 64)
    with Session(db.engine) as session:
        row = session.scalars(select(ReportRow).where(ReportRow.id == report_id)).one()
    assert (row.version, row.target, row.profile) == C7
    assert (row.outcome, row.message, row.request_hash) == ("failure", message, "f" * 64)
    assert row.created_at.utcoffset() is not None
    assert row.created_at.isoformat() == "2025-03-30T00:30:00+00:00"


def test_counts_per_release(db: Database):
    for _ in range(3):
        _report(db, C7, "success")
    _report(db, C7, "failure")
    _report(db, OLD_C7, "failure")
    _report(db, X86, "success")
    assert db.report_counts() == [
        ReportCounts(*OLD_C7, 0, 1),
        ReportCounts(*C7, 3, 1),
        ReportCounts(*X86, 1, 0),
    ]
    c7 = db.report_counts(version="24.10.2", target="ath79/generic",
                          profile="tplink_archer-c7-v5")
    assert c7 == [ReportCounts(*C7, 3, 1)]
    assert (c7[0].reports, c7[0].failure_rate) == (4, 0.25)
    assert [c.version for c in db.report_counts(target="ath79/generic",
                                               profile="tplink_archer-c7-v5")] == [
        "23.05.5", "24.10.2"]
    assert db.report_counts(version="99.99") == []


def test_no_reports_and_bad_outcomes(db: Database):
    assert db.report_counts() == []
    assert ReportCounts(*X86, 0, 0).failure_rate == 0.0
    with pytest.raises(ValueError, match="outcome"):
        _report(db, X86, "maybe")
    assert db.report_counts() == []
