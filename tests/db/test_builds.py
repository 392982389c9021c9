from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from firmforge.db import BuildRecord, BuildStatus, Database

from .conftest import Clock

HASH = "0f" * 32
OTHER = "a1" * 32
REQUEST: dict[str, Any] = {
    "distro": "openwrt",
    "version": "24.10.2",
    "target": "ath79/generic",
    "profile": "tplink_archer-c7-v5",
    "packages": ["luci", "-ppp"],
    "defaults": None,
    "rootfs_size_mb": 256,
    "diff_packages": True,
}
MANIFEST = {"zlib": "1.3.1-r1", "base-files": "1630-r28427", "luci": "25.1", "Üñî": "1"}
IMAGES = [
    {
        "name": "openwrt-24.10.2-ath79-generic-tplink_archer-c7-v5-squashfs-sysupgrade.bin",
        "sha256": "e3" * 32,
        "size": 7_340_032,
        "type": "sysupgrade",
        "filesystem": "squashfs",
    }
]
IMAGEBUILDER = {"name": "openwrt-imagebuilder-24.10.2-ath79-generic", "sha256": "9c" * 32}
BUILD_CMD = ["make", "image", "PROFILE=tplink_archer-c7-v5", "PACKAGES=luci -ppp"]


def queue(db: Database, request_hash: str = HASH) -> int:
    return db.record_queued(
        request_hash,
        REQUEST,
        "openwrt",
        "24.10.2",
        "ath79/generic",
        "tplink_archer-c7-v5",
        ("luci", "-ppp"),
    )


def fetch(db: Database, build_id: int) -> BuildRecord:
    record = db.get(build_id)
    assert record is not None
    return record


def test_lifecycle_to_done(db: Database, clock: Clock):
    enqueued = clock.now
    build_id = queue(db)
    record = fetch(db, build_id)
    assert record.status is BuildStatus.QUEUED
    assert (record.enqueued_at, record.started_at, record.finished_at) == (enqueued, None, None)
    assert record.request == REQUEST
    assert record.packages == ["luci", "-ppp"]
    assert (record.distro, record.version, record.target, record.profile) == (
        "openwrt",
        "24.10.2",
        "ath79/generic",
        "tplink_archer-c7-v5",
    )
    assert record.stage_timings == {}

    clock.advance(5)
    db.record_started(build_id, worker="builder-1")
    for stage, seconds in [("imagebuilder", 1.25), ("info", 0.5), ("manifest", 2)]:
        clock.advance(seconds)
        db.record_stage(build_id, stage, seconds)
    record = fetch(db, build_id)
    assert (record.status, record.worker, record.stage) == ("started", "builder-1", "manifest")
    assert record.started_at == enqueued + timedelta(seconds=5)
    assert record.stage_timings == {"imagebuilder": 1.25, "info": 0.5, "manifest": 2.0}

    clock.advance(10)
    db.record_done(
        build_id,
        manifest=MANIFEST,
        images=IMAGES,
        bin_dir=HASH,
        imagebuilder=IMAGEBUILDER,
        build_cmd=BUILD_CMD,
    )
    record = fetch(db, build_id)
    assert record.status is BuildStatus.DONE
    assert record.detail == "done"
    assert record.stage == "manifest"
    assert (record.manifest, record.images, record.imagebuilder) == (MANIFEST, IMAGES, IMAGEBUILDER)
    assert (record.bin_dir, record.build_cmd) == (HASH, BUILD_CMD)
    assert record.finished_at == enqueued + timedelta(seconds=18.75)
    assert record.duration_seconds == pytest.approx(13.75)


def test_lifecycle_to_failed(db: Database, clock: Clock):
    build_id = queue(db)
    db.record_started(build_id, worker="builder-2")
    db.record_stage(build_id, "info", 0.5)
    clock.advance(3)
    db.record_failed(build_id, stage="image", detail="Packages exceed device size limit")
    record = fetch(db, build_id)
    assert (record.status, record.stage) == (BuildStatus.FAILED, "image")
    assert record.detail == "Packages exceed device size limit"
    assert record.stage_timings == {"info": 0.5}
    assert (record.manifest, record.images, record.bin_dir, record.build_cmd) == (None,) * 4
    assert record.duration_seconds == pytest.approx(3)


def test_failing_before_start_has_no_duration(db: Database):
    build_id = queue(db)
    db.record_failed(build_id, stage="queue", detail="abandoned")
    record = fetch(db, build_id)
    assert record.status is BuildStatus.FAILED
    assert record.finished_at is not None
    assert record.duration_seconds is None


def test_a_restarted_build_begins_its_stages_anew(db: Database, clock: Clock):
    build_id = queue(db)
    db.record_started(build_id, worker="lost")
    db.record_stage(build_id, "info", 1)
    clock.advance(60)
    db.record_started(build_id, worker="builder-3")
    record = fetch(db, build_id)
    assert (record.worker, record.stage, record.stage_timings) == ("builder-3", None, {})
    assert record.started_at == clock.now


def test_a_repeated_stage_keeps_its_last_timing(db: Database):
    build_id = queue(db)
    db.record_started(build_id, worker="w")
    db.record_stage(build_id, "info", 1)
    db.record_stage(build_id, "manifest", 2)
    db.record_stage(build_id, "info", 3)
    assert fetch(db, build_id).stage_timings == {"info": 3.0, "manifest": 2.0}


def test_finished_records_are_final(db: Database):
    build_id = queue(db)
    db.record_failed(build_id, stage="info", detail="boom")
    with pytest.raises(ValueError, match="already failed"):
        db.record_started(build_id, worker="w")
    with pytest.raises(ValueError, match="already failed"):
        db.record_done(
            build_id,
            manifest={},
            images=[],
            bin_dir=HASH,
            imagebuilder=IMAGEBUILDER,
            build_cmd=[],
        )
    assert fetch(db, build_id).detail == "boom"


def test_unknown_build_ids_are_refused(db: Database):
    assert db.get(404) is None
    with pytest.raises(LookupError, match="404"):
        db.record_stage(404, "info", 1)


def test_latest_build_is_the_newest_attempt(db: Database, clock: Clock):
    assert db.latest_build(HASH) is None
    assert db.latest_done(HASH) is None
    first = queue(db)
    db.record_failed(first, stage="image", detail="mirror down")
    second = queue(db)
    db.record_started(second, worker="w")
    db.record_done(
        second, manifest={}, images=IMAGES, bin_dir=HASH, imagebuilder=IMAGEBUILDER, build_cmd=[]
    )
    other = queue(db, OTHER)
    clock.advance(-3600)  # a clock stepping back does not reorder attempts
    third = queue(db)

    latest = db.latest_build(HASH)
    assert latest is not None
    assert (latest.id, latest.status) == (third, BuildStatus.QUEUED)
    done = db.latest_done(HASH)
    assert done is not None
    assert (done.id, done.images) == (second, IMAGES)
    other_latest = db.latest_build(OTHER)
    assert other_latest is not None
    assert other_latest.id == other
    assert db.latest_done(OTHER) is None
    assert first < second < other < third


def test_json_round_trips(db: Database):
    request = {
        "z_last_key_first": {"nested": [1, 2.5, None, True, "ü"], "empty": {}},
        "a": [],
        "big": 2**53,
        "text": 'quotes " and \\ backslash and \u2603',
    }
    manifest = {f"pkg-{n:03d}": f"{n}.0-r{n}" for n in range(300, 0, -1)}
    build_id = db.record_queued(HASH, request, "openwrt", "SNAPSHOT", "x86/64", "generic", [])
    db.record_started(build_id, worker="w")
    db.record_done(
        build_id,
        manifest=manifest,
        images=[],
        bin_dir=HASH,
        imagebuilder=IMAGEBUILDER,
        build_cmd=[],
    )
    record = fetch(db, build_id)
    assert record.request == request
    assert list(record.request) == list(request)  # key order is kept
    assert record.manifest == manifest
    assert list(record.manifest or {}) == list(manifest)
    assert (record.packages, record.images, record.build_cmd) == ([], [], [])


def test_datetimes_come_back_aware_in_utc(database_url: str):
    tokyo = timezone(timedelta(hours=9))
    local = datetime(2025, 10, 26, 2, 30, tzinfo=tokyo)
    database = Database(database_url, clock=lambda: local)
    database.migrate()
    build_id = queue(database)
    database.record_started(build_id, worker="w")
    database.record_done(
        build_id, manifest={}, images=[], bin_dir=HASH, imagebuilder=IMAGEBUILDER, build_cmd=[]
    )
    record = fetch(database, build_id)
    for moment in (record.enqueued_at, record.started_at, record.finished_at):
        assert moment == local
        assert moment is not None
        assert moment.tzinfo is UTC
    database.dispose()


def test_real_clock_times_are_aware(database_url: str):
    database = Database(database_url)
    database.migrate()
    before = datetime.now(UTC)
    build_id = queue(database)
    enqueued_at = fetch(database, build_id).enqueued_at
    assert enqueued_at.tzinfo is UTC
    assert before <= enqueued_at <= datetime.now(UTC)
    database.dispose()


def test_a_naive_clock_is_refused(database_url: str):
    database = Database(database_url, clock=lambda: datetime(2025, 1, 1))
    database.migrate()
    with pytest.raises(ValueError, match="naive"):
        queue(database)
    assert database.recent(10) == []
    database.dispose()


def test_count_by_status(db: Database):
    assert db.count_by_status() == {"queued": 0, "started": 0, "done": 0, "failed": 0}
    ids = [queue(db) for _ in range(6)]
    for build_id in ids[:4]:
        db.record_started(build_id, worker="w")
    db.record_failed(ids[0], stage="info", detail="x")
    db.record_failed(ids[4], stage="queue", detail="x")
    db.record_done(
        ids[1], manifest={}, images=[], bin_dir=HASH, imagebuilder=IMAGEBUILDER, build_cmd=[]
    )
    assert db.count_by_status() == {"queued": 1, "started": 2, "done": 1, "failed": 2}


def test_recent_is_newest_first(db: Database):
    ids = [queue(db, f"{n:064x}") for n in range(5)]
    assert [record.id for record in db.recent(3)] == ids[:-4:-1]
    assert [record.id for record in db.recent(100)] == ids[::-1]
    assert db.recent(0) == []
    with pytest.raises(ValueError, match="negative"):
        db.recent(-1)


def test_records_stay_readable_after_the_database_is_closed(db: Database):
    build_id = queue(db)
    records = [db.get(build_id), db.latest_build(HASH), db.recent(1)[0]]
    db.dispose()
    for record in records:
        assert record is not None
        assert (record.id, record.request, record.packages) == (build_id, REQUEST, ["luci", "-ppp"])


def test_concurrent_stage_reports_are_all_kept(db: Database):
    build_id = queue(db)
    db.record_started(build_id, worker="w")
    stages = [f"stage-{n}" for n in range(8)]
    start = threading.Barrier(len(stages))

    def report(stage: str) -> None:
        start.wait(timeout=30)
        for repeat in range(5):
            db.record_stage(build_id, stage, repeat)

    threads = [threading.Thread(target=report, args=(stage,)) for stage in stages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert fetch(db, build_id).stage_timings == dict.fromkeys(stages, 4.0)


def _session_identity(database: Database) -> int | None:
    """The server process of a pooled PostgreSQL connection (SQLite has no such thing)."""
    if database.engine.dialect.name != "postgresql":
        return None
    with database.engine.connect() as connection:
        return connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()


def _work_horse(database: Database, build_id: int, results: multiprocessing.Queue) -> None:
    database.record_stage(build_id, "image", 4.0)
    results.put(_session_identity(database))


def test_a_forked_work_horse_does_not_share_the_parents_connections(db: Database):
    # rq forks a work horse per job, after the parent has used its pool.
    build_id = queue(db)
    db.record_started(build_id, worker="w")
    parent_session = _session_identity(db)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_work_horse, args=(db, build_id, results))
    child.start()
    child_session = results.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0
    if parent_session is not None:
        assert child_session != parent_session
    assert _session_identity(db) == parent_session  # the parent's session survived
    db.record_stage(build_id, "sign", 0.25)
    assert fetch(db, build_id).stage_timings == {"image": 4.0, "sign": 0.25}
