"""Sampling the build queue's length for the statistics page's "queue over time" chart.

A daemon thread writes ``len(queue)`` to the database every ``interval`` seconds and, about
once an hour, forgets samples older than ``RETENTION`` (the page shows at most 90 days). A
failed sample (Redis or the database away) is logged and skipped: a gap in the chart, never a
stopped server.

Usage::

    stop = threading.Event()
    start_queue_sampler(queue, database, interval=60.0, stop=stop)
    ...
    stop.set()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sized
from datetime import UTC, datetime, timedelta

from firmforge.db import Database
from firmforge.db._stats import add_queue_sample, prune_queue_samples

__all__ = ["DEFAULT_INTERVAL", "RETENTION", "sample_once", "start_queue_sampler"]

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 60.0
"""Seconds between two samples."""

RETENTION = timedelta(days=90)
"""How long samples are kept."""

_PRUNE_EVERY = timedelta(hours=1)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def sample_once(queue: Sized, database: Database, now: datetime) -> int:
    """Write the queue's length at ``now``; returns it."""
    length = len(queue)
    add_queue_sample(database, now, length)
    return length


def _run(queue: Sized, database: Database, interval: float, stop: threading.Event,
         clock: Callable[[], datetime]) -> None:
    pruned: datetime | None = None
    while True:
        now = clock()
        try:
            sample_once(queue, database, now)
            if pruned is None or now - pruned >= _PRUNE_EVERY:
                prune_queue_samples(database, now - RETENTION)
                pruned = now
        except Exception:  # Redis or the database may be away for a while
            log.exception("could not sample the queue length")
        if stop.wait(interval):
            return


def start_queue_sampler(queue: Sized, database: Database, interval: float,
                        stop: threading.Event, *,
                        clock: Callable[[], datetime] = _utcnow) -> threading.Thread:
    """Sample now and then every ``interval`` seconds in a daemon thread until ``stop`` is set."""
    if interval <= 0:
        raise ValueError(f"interval must be positive, got {interval}")
    thread = threading.Thread(target=_run, args=(queue, database, interval, stop, clock),
                              name="queue-sampler", daemon=True)
    thread.start()
    return thread
