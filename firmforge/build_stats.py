"""Counting build requests for the statistics page without slowing the build route down.

``POST /api/v1/build`` is the hottest route (thousands of cache hits a second), so a request
only adds one to a counter in memory (``RequestRecorder.record``: a dict update under a lock).
A background thread (``start``) writes the counts every ``interval`` seconds as one upsert,
and ``stop`` writes the rest at shutdown; a crash loses at most one interval. A flush that
fails (database down) keeps its counts for the next one. The pattern is ``downloads``'s.

Each count is per UTC day, request hash and outcome (``new``: the request queued a build;
``cache_hit``: a finished build answered it; ``failed``: a failed build answered it). The
release (distro, version, target, profile) and the packages the request added to its
device's defaults are resolved at flush time, off the request path: from the request the
build route saw (``record(..., request=...)``), else from the newest build record of the
hash, and remembered (LRU).

Usage::

    recorder = RequestRecorder(database, defaults=lambda v, t, p: {"base-files", "dnsmasq"})
    recorder.start(interval=5.0)
    recorder.record("0f" * 32, "cache_hit")  # in the request path
    recorder.stop()  # at shutdown: stops the thread, writes the rest
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Mapping
from datetime import date
from typing import Any, NamedTuple

from firmforge.db import Database
from firmforge.db._stats import OUTCOMES, RequestCount, add_build_requests
from firmforge.periodic_flush import PeriodicFlush, utc_today

__all__ = ["DEFAULT_FLUSH_INTERVAL", "Defaults", "Release", "RequestRecorder"]


DEFAULT_FLUSH_INTERVAL = 5.0
"""Seconds between writes of the counts to the database (the most a crash can lose)."""

_RELEASE_CACHE_SIZE = 8192
"""Request hashes whose release is remembered between flushes."""

_PENDING_REQUESTS = 4096
"""Requests the build route handed over, kept until their first flush (bounded: a flood of
new requests cannot grow memory without limit; a dropped one is read from its record)."""

Defaults = Callable[[str, str, str], Collection[str]]
"""``(version, target, profile) -> package names`` a device's image has without asking."""


class Release(NamedTuple):
    distro: str
    version: str
    target: str
    profile: str
    packages: tuple[str, ...]
    """Packages the request added to its device's defaults."""


_NO_RELEASE = Release("", "", "", "", ())


def _no_defaults(_version: str, _target: str, _profile: str) -> Collection[str]:
    return ()


class RequestRecorder:
    """Build-request counts in memory, written to ``database`` by ``flush`` (see the module).

    ``defaults`` tells which packages a device has anyway, so only added ones are counted; it
    may raise (an unknown release), and then every requested package counts as added.
    """

    def __init__(self, database: Database, *, defaults: Defaults = _no_defaults,
                 today: Callable[[], date] = utc_today) -> None:
        self._database = database
        self._defaults = defaults
        self._today = today
        self._lock = threading.Lock()
        self._pending: Counter[tuple[date, str, str]] = Counter()
        self._requests: OrderedDict[str, Mapping[str, Any]] = OrderedDict()
        self._flushing = threading.Lock()  # one flush at a time (thread, stats route, stop)
        self._releases: OrderedDict[str, Release] = OrderedDict()
        self._flusher = PeriodicFlush(self.flush, "build-request counts")

    def record(self, request_hash: str, outcome: str,
               request: Mapping[str, Any] | None = None) -> None:
        """One request for ``request_hash`` answered with ``outcome``; never touches the
        database. ``request`` (the validated request, for a new build) names its release."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
        key = (self._today(), request_hash, outcome)
        with self._lock:
            self._pending[key] += 1
            if request is not None:
                self._requests[request_hash] = request
                if len(self._requests) > _PENDING_REQUESTS:
                    self._requests.popitem(last=False)

    def today(self) -> date:
        """The UTC day a request counted now belongs to."""
        return self._today()

    @property
    def pending(self) -> int:
        """Requests counted but not yet written."""
        with self._lock:
            return sum(self._pending.values())

    def flush(self) -> int:
        """Write the counts so far to the database; returns how many requests were written.

        On failure the counts go back into memory (added to any counted since) and the error
        propagates.
        """
        with self._flushing:
            with self._lock:
                pending, self._pending = self._pending, Counter()
                requests, self._requests = self._requests, OrderedDict()
            if not pending:
                return 0
            try:
                counts = [
                    RequestCount(day, digest, outcome, count,
                                 *self._release(digest, requests.get(digest)))
                    for (day, digest, outcome), count in pending.items()
                ]
                add_build_requests(self._database, counts)
            except BaseException:
                with self._lock:
                    self._pending.update(pending)
                    self._requests = OrderedDict({**requests, **self._requests})
                raise
            return sum(pending.values())

    def start(self, interval: float = DEFAULT_FLUSH_INTERVAL) -> None:
        """Flush every ``interval`` seconds in a daemon thread until ``stop``."""
        self._flusher.start(interval)

    def stop(self) -> None:
        """Stop the thread (if started) and write what is still counted."""
        self._flusher.stop()

    def _release(self, request_hash: str, request: Mapping[str, Any] | None) -> Release:
        """The release of ``request_hash``; found ones are remembered (LRU)."""
        release = self._releases.get(request_hash)
        if release is not None:
            self._releases.move_to_end(request_hash)
            return release
        if request is None:
            record = self._database.latest_build(request_hash)
            if record is None:
                return _NO_RELEASE  # not remembered: the record may appear later
            request = {"distro": record.distro, "version": record.version,
                       "target": record.target, "profile": record.profile,
                       "packages": record.packages}
        release = self._release_of(request)
        self._releases[request_hash] = release
        if len(self._releases) > _RELEASE_CACHE_SIZE:
            self._releases.popitem(last=False)
        return release

    def _release_of(self, request: Mapping[str, Any]) -> Release:
        version, target = str(request.get("version", "")), str(request.get("target", ""))
        profile = str(request.get("profile", ""))
        wanted = [str(p) for p in request.get("packages") or () if not str(p).startswith("-")]
        try:
            defaults = set(self._defaults(version, target, profile))
        except Exception:  # an unknown release: every requested package was added
            defaults = set()
        added = tuple(sorted({name for name in wanted if name not in defaults}))
        return Release(str(request.get("distro", "") or "openwrt"), version, target, profile,
                       added)
