"""The database: build records in SQLite (default) or PostgreSQL, migrated with Alembic.

Usage::

    from datetime import date

    from firmforge.db import Database, DownloadCount

    db = Database("sqlite:///data/firmforge.db")  # or postgresql+psycopg://user@host/db
    db.migrate()  # at start-up; safe from several processes at once
    build_id = db.record_queued(
        "0f" * 32, {"profile": "generic"}, "openwrt", "24.10.2", "x86/64", "generic", ["luci"]
    )
    db.record_started(build_id, worker="host-1")
    db.record_stage(build_id, "manifest", 1.8)
    db.record_done(
        build_id,
        manifest={"luci": "25.1"},
        images=[{"name": "openwrt-x86-64-generic-squashfs-combined.img.gz"}],
        bin_dir="0f" * 32,
        imagebuilder={"name": "openwrt-imagebuilder-24.10.2-x86-64", "sha256": "…"},
        build_cmd=["make", "image", "PROFILE=generic"],
    )
    assert db.latest_done("0f" * 32).detail == "done"
    db.add_downloads([DownloadCount(date(2026, 7, 1), "0f" * 32, "sha256sums", 3)])
    assert db.download_stats(date(2026, 7, 1), date(2026, 7, 1)).total == 3
    db.add_report(distro="openwrt", version="24.10.2", target="x86/64", profile="generic",
                  outcome="success")
    assert db.report_counts(version="24.10.2")[0].successes == 1
    db.dispose()
"""

from firmforge.db._database import Database
from firmforge.db._downloads import DownloadCount, DownloadStats, FileDownloads, ReleaseDownloads
from firmforge.db._models import BuildRecord, BuildStatus
from firmforge.db._reports import ReportCounts

__all__ = [
    "BuildRecord",
    "BuildStatus",
    "Database",
    "DownloadCount",
    "DownloadStats",
    "FileDownloads",
    "ReleaseDownloads",
    "ReportCounts",
]
