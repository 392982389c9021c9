"""``DownloadCounter``: counts in memory, written by flushes, release fields from build records."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from firmforge.db import Database, DownloadCount
from firmforge.downloads import DownloadCounter

HASH = "c" * 64
DAY = date(2025, 6, 1)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'firmforge.db'}")
    database.migrate()
    yield database
    database.dispose()


def done_build(database: Database, request_hash: str = HASH) -> None:
    build_id = database.record_queued(request_hash, {}, "openwrt", "24.10.2", "x86/64",
                                      "generic", [])
    database.record_started(build_id, worker="test")
    database.record_done(build_id, manifest={}, images=[], bin_dir=request_hash,
                         imagebuilder={}, build_cmd=[])


def test_counts_stay_in_memory_until_flushed(database: Database):
    done_build(database)
    counter = DownloadCounter(database, today=lambda: DAY)
    for _ in range(3):
        counter.count(HASH, "img.bin")
    counter.count(HASH, "sha256sums")
    assert counter.pending == 4
    assert database.download_stats(DAY, DAY).total == 0
    assert counter.flush() == 4
    assert counter.pending == 0
    assert counter.flush() == 0
    stats = database.download_stats(DAY, DAY)
    assert stats.total == 4
    assert [(f.file, f.version, f.target, f.profile, f.downloads) for f in stats.top_files] == [
        ("img.bin", "24.10.2", "x86/64", "generic", 3),
        ("sha256sums", "24.10.2", "x86/64", "generic", 1),
    ]


def test_counts_fall_on_the_day_they_were_made(database: Database):
    days = iter([date(2025, 6, 1), date(2025, 6, 2), date(2025, 6, 2)])
    counter = DownloadCounter(database, today=lambda: next(days))
    for _ in range(3):
        counter.count(HASH, "img.bin")
    counter.flush()
    stats = database.download_stats(date(2025, 6, 1), date(2025, 6, 2))
    assert stats.per_day == [(date(2025, 6, 1), 1), (date(2025, 6, 2), 2)]


def test_a_file_without_build_record_counts_with_empty_release(database: Database):
    counter = DownloadCounter(database, today=lambda: DAY)
    counter.count(HASH, "img.bin")
    counter.flush()
    (row,) = database.download_stats(DAY, DAY).top_files
    assert (row.version, row.target, row.profile, row.downloads) == ("", "", "", 1)


def test_release_lookups_are_remembered(database: Database, monkeypatch: pytest.MonkeyPatch):
    done_build(database)
    lookups: list[str] = []
    original = database.latest_done

    def counting_lookup(request_hash: str):
        lookups.append(request_hash)
        return original(request_hash)

    monkeypatch.setattr(database, "latest_done", counting_lookup)
    counter = DownloadCounter(database, today=lambda: DAY)
    for _ in range(3):
        counter.count(HASH, "img.bin")
        counter.flush()
    assert lookups == [HASH]


def test_a_failed_flush_keeps_its_counts(database: Database, monkeypatch: pytest.MonkeyPatch):
    counter = DownloadCounter(database, today=lambda: DAY)
    counter.count(HASH, "img.bin")

    def broken(_counts: list[DownloadCount]) -> None:
        raise RuntimeError("database away")

    monkeypatch.setattr(database, "add_downloads", broken)
    with pytest.raises(RuntimeError):
        counter.flush()
    counter.count(HASH, "img.bin")
    assert counter.pending == 2
    monkeypatch.undo()
    assert counter.flush() == 2
    assert database.download_stats(DAY, DAY).total == 2


def test_the_thread_flushes_every_interval_and_stop_writes_the_rest(database: Database):
    counter = DownloadCounter(database, today=lambda: DAY)
    counter.start(interval=0.05)
    try:
        with pytest.raises(RuntimeError, match="already running"):
            counter.start(interval=0.05)
        counter.count(HASH, "img.bin")
        deadline = time.monotonic() + 10
        while database.download_stats(DAY, DAY).total < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert database.download_stats(DAY, DAY).total == 1
    finally:
        counter.stop()
    slow = DownloadCounter(database, today=lambda: DAY)
    slow.start(interval=3600)
    slow.count(HASH, "img.bin")
    slow.stop()
    assert database.download_stats(DAY, DAY).total == 2


def test_interval_must_be_positive(database: Database):
    with pytest.raises(ValueError, match="positive"):
        DownloadCounter(database).start(interval=0)


def test_store_url_setting_is_checked_and_normalised():
    from pydantic import ValidationError

    from firmforge.config import Settings

    assert Settings(store_url="https://cdn.example.org/fw/").store_url == "https://cdn.example.org/fw"
    assert Settings(store_url="").store_url is None
    with pytest.raises(ValidationError, match="http"):
        Settings(store_url="ftp://cdn.example.org")
