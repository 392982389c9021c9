"""Recording build requests and queue samples, and the statistics read back: on SQLite and,
with ``FIRMFORGE_TEST_DATABASE_URL``, on PostgreSQL (the ``db`` fixture of ``tests/db``)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from firmforge.api._hits import render_json
from firmforge.api._stats import RequestStatsMiddleware
from firmforge.build_stats import RequestRecorder
from firmforge.db import Database
from firmforge.db._stats import (
    RequestCount,
    add_build_requests,
    add_queue_sample,
    build_stats,
    prune_queue_samples,
)
from firmforge.queue_sampler import sample_once, start_queue_sampler
from tests.db.conftest import Clock

DAY = date(2025, 3, 30)  # the clock fixture's day
C7 = {"distro": "openwrt", "version": "24.10.5", "target": "ath79/generic",
      "profile": "tplink_archer-c7-v5", "packages": ["luci", "tcpdump", "-ppp", "dnsmasq"]}
DEFAULTS = {"dnsmasq", "ppp", "luci-light"}


def _defaults(version: str, target: str, profile: str) -> set[str]:
    if (version, target) != ("24.10.5", "ath79/generic"):
        raise LookupError("unknown release")
    return DEFAULTS


def _recorder(db: Database, day: date = DAY) -> RequestRecorder:
    return RequestRecorder(db, defaults=_defaults, today=lambda: day)


def test_requests_are_counted_in_memory_and_written_in_one_flush(db: Database):
    recorder = _recorder(db)
    recorder.record("a" * 64, "new", C7)
    for _ in range(5):
        recorder.record("a" * 64, "cache_hit")
    recorder.record("a" * 64, "failed")
    assert recorder.pending == 7
    assert build_stats(db, DAY, DAY).per_day[0].requests == 0  # nothing written yet
    assert recorder.flush() == 7
    assert recorder.pending == 0 and recorder.flush() == 0
    stats = build_stats(db, DAY, DAY)
    (day,) = stats.per_day
    assert (day.day, day.new, day.cache_hits, day.failed) == (DAY, 1, 5, 1)
    assert stats.totals == {"new": 1, "cache_hits": 5, "failed": 1}
    assert stats.devices == [("ath79/generic", "tplink_archer-c7-v5", 7)]
    assert stats.versions == [("openwrt", "24.10.5", 7)]
    # only what the request added to the device's defaults; removals are not additions
    assert stats.packages == [("luci", 7), ("tcpdump", 7)]


def test_flushes_add_up_and_days_are_kept_apart(db: Database):
    first = _recorder(db)
    first.record("a" * 64, "new", C7)
    first.flush()
    first.record("a" * 64, "cache_hit")
    first.flush()
    first.record("a" * 64, "cache_hit")
    first.flush()
    later = _recorder(db, DAY + timedelta(days=2))
    later.record("a" * 64, "cache_hit")
    later.flush()
    stats = build_stats(db, DAY, DAY + timedelta(days=2))
    assert [(d.new, d.cache_hits) for d in stats.per_day] == [(1, 2), (0, 0), (0, 1)]
    # the later recorder (a restarted server) knows the hash neither from memory nor from a
    # build record: counted, without a release
    assert stats.packages == [("luci", 3), ("tcpdump", 3)]
    assert build_stats(db, DAY + timedelta(days=1), DAY + timedelta(days=2)).totals == {
        "new": 0, "cache_hits": 1, "failed": 0}


def test_a_hash_seen_only_as_a_cache_hit_takes_its_release_from_the_build_record(db: Database):
    db.record_queued("b" * 64, {}, "openwrt", "24.10.5", "ath79/generic", "glinet_gl-ar150",
                     ["luci", "htop"])
    recorder = _recorder(db)
    recorder.record("b" * 64, "cache_hit")
    recorder.record("c" * 64, "cache_hit")  # no record: counted without a release
    recorder.flush()
    stats = build_stats(db, DAY, DAY)
    assert stats.totals["cache_hits"] == 2
    assert stats.devices == [("ath79/generic", "glinet_gl-ar150", 1)]
    assert stats.packages == [("htop", 1), ("luci", 1)]


def test_an_unknown_release_counts_every_requested_package_as_added(db: Database):
    recorder = _recorder(db)
    recorder.record("d" * 64, "new", {**C7, "version": "23.05.5"})
    recorder.flush()
    names = [name for name, _ in build_stats(db, DAY, DAY).packages]
    assert names == ["dnsmasq", "luci", "tcpdump"]


def test_a_failed_flush_keeps_the_counts(tmp_path: Path):
    database = Database(f"sqlite:///{tmp_path / 'later.db'}")  # not migrated yet: no tables
    recorder = _recorder(database)
    recorder.record("a" * 64, "new", C7)
    with pytest.raises(Exception, match="build_requests"):
        recorder.flush()
    recorder.record("a" * 64, "cache_hit")
    assert recorder.pending == 2
    database.migrate()
    assert recorder.flush() == 2
    stats = build_stats(database, DAY, DAY)
    assert stats.totals == {"new": 1, "cache_hits": 1, "failed": 0}
    assert stats.packages == [("luci", 2), ("tcpdump", 2)]  # the request was kept too
    database.dispose()


def test_the_flusher_thread_writes_and_stop_writes_the_rest(db: Database):
    recorder = _recorder(db)
    recorder.start(interval=0.05)
    recorder.record("a" * 64, "new", C7)
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while recorder.pending and datetime.now(UTC) < deadline:
        threading.Event().wait(0.05)
    assert recorder.pending == 0
    recorder.record("a" * 64, "cache_hit")
    recorder.stop()
    assert build_stats(db, DAY, DAY).totals["cache_hits"] == 1
    with pytest.raises(ValueError, match="outcome"):
        recorder.record("a" * 64, "maybe")


def test_bad_counts_are_refused(db: Database):
    with pytest.raises(ValueError, match="positive"):
        add_build_requests(db, [RequestCount(DAY, "a" * 64, "new", 0)])
    with pytest.raises(ValueError, match="outcome"):
        add_build_requests(db, [RequestCount(DAY, "a" * 64, "rebuilt", 1)])
    with pytest.raises(ValueError, match="empty period"):
        build_stats(db, DAY, DAY - timedelta(days=1))


def _build(db: Database, clock: Clock, seconds: float, *, fail: bool = False) -> None:
    build_id = db.record_queued("e" * 64, {}, "openwrt", "24.10.5", "x86/64", "generic", [])
    db.record_started(build_id, worker="w1")
    clock.advance(seconds)
    if fail:
        db.record_failed(build_id, stage="building_image", detail="Error: too big")
    else:
        db.record_done(build_id, manifest={}, images=[], bin_dir="e" * 64, imagebuilder={},
                       build_cmd=["make", "image"])


def test_build_time_distribution_of_finished_builds(db: Database, clock: Clock):
    for seconds in (4, 8, 25, 95, 4000):
        _build(db, clock, seconds)
    _build(db, clock, 50, fail=True)
    stats = build_stats(db, DAY, DAY + timedelta(days=1))
    assert (stats.builds_done, stats.builds_failed) == (5, 1)
    assert dict(stats.durations) == {
        "< 10 s": 2, "10 s – 30 s": 1, "30 s – 1 min": 0, "1 min – 2 min": 1,
        "2 min – 5 min": 0, "5 min – 10 min": 0, "10 min – 30 min": 0, "≥ 30 min": 1}
    assert stats.duration_quantiles == {"median": 25.0, "p90": 4000.0}
    empty = build_stats(db, DAY - timedelta(days=9), DAY - timedelta(days=8))
    assert empty.builds_done == 0 and empty.duration_quantiles["median"] is None


def test_queue_samples_become_a_series_with_gaps(db: Database):
    start = datetime(2025, 3, 30, tzinfo=UTC)
    for minutes, length in ((0, 2), (1, 4), (10, 6), (125, 3)):
        add_queue_sample(db, start + timedelta(minutes=minutes), length)
    stats = build_stats(db, DAY, DAY, now=start + timedelta(hours=3))
    # a one-day window plots 5-minute buckets, up to "now"
    assert len(stats.queue) == 36 and stats.queue[0].seconds == 300
    first = stats.queue[0]
    assert (first.start, first.max, first.mean) == (start, 4, 3.0)
    assert stats.queue[1].max is None  # no sample: the server was down
    assert (stats.queue[2].max, stats.queue[25].max) == (6, 3)
    assert len(build_stats(db, DAY, DAY).queue) == 288  # the whole day
    assert prune_queue_samples(db, start + timedelta(minutes=15)) == 3
    assert build_stats(db, DAY, DAY, now=start + timedelta(hours=3)).queue[0].max is None


def test_device_reports_per_release_in_the_window(db: Database, clock: Clock):
    for version, outcome in (("24.10.5", "success"), ("24.10.5", "success"),
                             ("24.10.5", "failure"), ("23.05.5", "success")):
        db.add_report(distro="openwrt", version=version, target="x86/64", profile="generic",
                      outcome=outcome)
    clock.advance(3 * 86400)
    db.add_report(distro="openwrt", version="24.10.5", target="x86/64", profile="generic",
                  outcome="failure")
    assert build_stats(db, DAY, DAY).reports == [("23.05.5", 1, 0), ("24.10.5", 2, 1)]
    later = DAY + timedelta(days=3)
    assert build_stats(db, later, later).reports == [("24.10.5", 0, 1)]


def test_the_sampler_writes_the_queue_length(db: Database):
    now = datetime(2025, 3, 30, 1, tzinfo=UTC)
    assert sample_once([1, 2, 3], db, now) == 3
    stop = threading.Event()
    thread = start_queue_sampler([1], db, interval=3600, stop=stop,
                                 clock=lambda: now + timedelta(minutes=30))
    stop.set()
    thread.join(timeout=10)
    points = [p for p in build_stats(db, DAY, DAY, now=now + timedelta(hours=1)).queue
              if p.max is not None]
    assert [(p.max, p.mean) for p in points] == [(3, 3.0), (1, 1.0)]
    with pytest.raises(ValueError, match="positive"):
        start_queue_sampler([], db, interval=0, stop=stop)


# -- the hot path, in process ----------------------------------------------------------------

BUILD = {"version": "24.10.5", "target": "ath79/generic", "profile": "tplink_archer-c7-v5",
         "packages": ["tcpdump"]}


def test_the_build_route_counts_new_requests_and_cache_hits(client: TestClient):
    queued = client.post("/api/v1/build", json=BUILD)
    assert queued.status_code == 202
    request_hash = queued.json()["request_hash"]
    assert client.post("/api/v1/build", json=BUILD).status_code == 202  # a poll: not counted
    services = client.app.state.services  # type: ignore[attr-defined]
    done = render_json({"status": 200, "detail": "done", "request_hash": request_hash})
    services.finished.put(request_hash, done)  # answered from memory from now on
    for _ in range(3):
        assert client.post("/api/v1/build", json=BUILD).status_code == 200
    assert client.get(f"/api/v1/build/{request_hash}").status_code == 200  # a GET: not counted
    assert client.post("/api/v1/build", json={**BUILD, "packages": ["nope"]}).status_code == 400
    body = client.get("/api/v1/stats/builds?days=1").json()
    assert body["requests"] == {"total": 4, "new": 1, "cache_hits": 3, "failed": 0}
    assert body["devices"] == [{"target": "ath79/generic", "profile": "tplink_archer-c7-v5",
                                "requests": 4}]
    assert body["packages"] == [{"name": "tcpdump", "requests": 4}]
    assert body["versions"] == [{"distro": "openwrt", "version": "24.10.5", "requests": 4}]


def test_failed_answers_are_counted_by_the_middleware(db: Database) -> None:
    failure = render_json({"detail": "Error: too big", "request_hash": "f" * 64, "status": 500})

    async def app(scope: object, receive: object, send) -> None:  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 500,
                    "headers": [(b"x-imagebuilder-status", b"failed")]})
        await send({"type": "http.response.body", "body": failure})

    recorder = _recorder(db)
    middleware = RequestStatsMiddleware(app, recorder)
    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    for method, path in (("POST", "/api/v1/build"), ("GET", "/api/v1/build/" + "f" * 64)):
        asyncio.run(middleware({"type": "http", "method": method, "path": path}, receive, send))
    assert len(sent) == 4  # every message passed on
    assert recorder.pending == 1
    recorder.flush()
    assert build_stats(db, DAY, DAY).totals["failed"] == 1
