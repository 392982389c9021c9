"""Counting downloads of stored files without slowing them down.

A download only adds one to a counter in memory (``DownloadCounter.count``: a dict update
under a lock). A background thread (``start``) writes what was counted to the database every
``interval`` seconds as one upsert per flush, and ``stop`` writes the rest at shutdown, so a
restart keeps every count; a crash (SIGKILL, power loss) loses at most the last interval.
A flush that fails (database down) keeps its counts in memory for the next one.

Each count is per UTC day and file (``bin_dir``/name); the build's distro, version, target
and profile are looked up by ``bin_dir`` (the request hash) from the newest done build record
at flush time, off the request path, and remembered in memory. A file without a build record
counts with empty release fields.

Usage::

    counter = DownloadCounter(database)
    counter.start(interval=5.0)
    counter.count("0f" * 32, "sha256sums")  # in the request handler
    counter.stop()  # at shutdown: stops the thread, writes the rest
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from datetime import date

from firmforge.db import Database, DownloadCount
from firmforge.periodic_flush import PeriodicFlush, utc_today

__all__ = ["DEFAULT_FLUSH_INTERVAL", "DownloadCounter"]


DEFAULT_FLUSH_INTERVAL = 5.0
"""Seconds between writes of the counts to the database (the most a crash can lose)."""

_RELEASE_CACHE_SIZE = 4096
"""Build records (release fields by ``bin_dir``) remembered between flushes."""

_Release = tuple[str, str, str, str]  # distro, version, target, profile
_NO_RELEASE: _Release = ("", "", "", "")


class DownloadCounter:
    """Download counts in memory, written to ``database`` by ``flush`` (see the module)."""

    def __init__(self, database: Database, *, today: Callable[[], date] = utc_today) -> None:
        self._database = database
        self._today = today
        self._lock = threading.Lock()
        self._pending: Counter[tuple[date, str, str]] = Counter()
        self._flushing = threading.Lock()  # one flush at a time (thread, stats route, stop)
        self._releases: OrderedDict[str, _Release] = OrderedDict()
        self._flusher = PeriodicFlush(self.flush, "download counts")

    def count(self, bin_dir: str, name: str) -> None:
        """One download of ``bin_dir/name`` today; never touches the database."""
        key = (self.today(), bin_dir, name)
        with self._lock:
            self._pending[key] += 1

    def today(self) -> date:
        """The UTC day a download counted now belongs to."""
        return self._today()

    @property
    def pending(self) -> int:
        """Downloads counted but not yet written."""
        with self._lock:
            return sum(self._pending.values())

    def flush(self) -> int:
        """Write the counts so far to the database; returns how many downloads were written.

        On failure the counts go back into memory (added to any counted since) and the error
        propagates.
        """
        with self._flushing:
            with self._lock:
                pending, self._pending = self._pending, Counter()
            if not pending:
                return 0
            try:
                counts = [
                    DownloadCount(day, bin_dir, name, count, *self._release(bin_dir))
                    for (day, bin_dir, name), count in pending.items()
                ]
                self._database.add_downloads(counts)
            except BaseException:
                with self._lock:
                    self._pending.update(pending)
                raise
            return sum(pending.values())

    def start(self, interval: float = DEFAULT_FLUSH_INTERVAL) -> None:
        """Flush every ``interval`` seconds in a daemon thread until ``stop``."""
        self._flusher.start(interval)

    def stop(self) -> None:
        """Stop the thread (if started) and write what is still counted."""
        self._flusher.stop()

    def _release(self, bin_dir: str) -> _Release:
        """The release of the build in ``bin_dir``; found ones are remembered (LRU)."""
        release = self._releases.get(bin_dir)
        if release is not None:
            self._releases.move_to_end(bin_dir)
            return release
        record = self._database.latest_done(bin_dir)
        if record is None:
            return _NO_RELEASE  # not remembered: the record may appear later
        release = (record.distro, record.version, record.target, record.profile)
        self._releases[bin_dir] = release
        if len(self._releases) > _RELEASE_CACHE_SIZE:
            self._releases.popitem(last=False)
        return release
