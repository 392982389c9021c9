"""``GET /api/v1/stats/downloads``: how often stored files were downloaded.

``?days=N`` (1–90, default 30) is the period: today (UTC) and the N-1 days before it;
``?top=N`` (1–100, default 10) how many files are listed. Counts held in memory are written
first, so the answer includes every download this process has counted.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from firmforge.api._services import Services, services
from firmforge.db import DownloadStats

__all__ = ["MAX_DAYS", "router", "stats_json"]

log = logging.getLogger(__name__)

MAX_DAYS = 90
"""The longest period ``/api/v1/stats/downloads`` reports, days."""

router = APIRouter()


@router.get("/api/v1/stats/downloads", tags=["stats"], operation_id="stats_downloads")
def download_stats(
    svc: Annotated[Services, Depends(services)],
    days: Annotated[int, Query(ge=1, le=MAX_DAYS, description="Days, today included.")] = 30,
    top: Annotated[int, Query(ge=1, le=100, description="Files listed, most first.")] = 10,
) -> dict[str, Any]:
    try:
        svc.downloads.flush()
    except Exception:  # answer from what is stored; the flusher retries the rest
        log.exception("could not write download counts before reading them")
    last = svc.downloads.today()
    return stats_json(svc.database.download_stats(last - timedelta(days=days - 1), last, top))


def stats_json(stats: DownloadStats) -> dict[str, Any]:
    """The JSON body for ``stats``."""
    return {
        "days": len(stats.per_day),
        "first": stats.first.isoformat(),
        "last": stats.last.isoformat(),
        "total": stats.total,
        "per_day": [{"date": day.isoformat(), "downloads": n} for day, n in stats.per_day],
        "top_files": [
            {
                "bin_dir": f.bin_dir,
                "file": f.file,
                "url": f"/store/{f.bin_dir}/{f.file}",
                "version": f.version,
                "target": f.target,
                "profile": f.profile,
                "downloads": f.downloads,
            }
            for f in stats.top_files
        ],
        "versions": [{"version": r.version, "downloads": r.downloads} for r in stats.versions],
        "targets": [{"target": r.target, "downloads": r.downloads} for r in stats.targets],
        "profiles": [
            {"version": r.version, "target": r.target, "profile": r.profile,
             "downloads": r.downloads}
            for r in stats.profiles
        ],
    }
