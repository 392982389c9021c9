"""A daemon thread that writes in-memory counts every few seconds, and once more at stop.

Download counts and build-request counts are kept in memory on the hot path and written to
the database in batches; both need the same thread: start once, flush every ``interval``,
keep the counts when the database is away (``flush`` restores them on failure), and write the
rest on a clean stop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime

__all__ = ["PeriodicFlush", "utc_today"]

log = logging.getLogger(__name__)


def utc_today() -> date:
    """The UTC day a count made now belongs to (counts are kept per UTC day)."""
    return datetime.now(UTC).date()


class PeriodicFlush:
    """Calls ``flush`` every ``interval`` seconds until ``stop``, which flushes once more."""

    def __init__(self, flush: Callable[[], object], what: str) -> None:
        self._flush = flush
        self.what = what  # for thread names and log lines: "download counts"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, interval: float) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        if self._thread is not None:
            raise RuntimeError(f"the flusher of {self.what} is already running")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name=f"flush {self.what}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (if started) and write what is still counted."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            self._flush()
        except Exception:
            log.exception("could not write the %s still in memory at shutdown", self.what)

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self._flush()
            except Exception:  # the database may be away for a while; retry next time
                log.exception("could not write %s; keeping them for the next try", self.what)
