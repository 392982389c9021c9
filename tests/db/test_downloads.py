"""Download counts in the database: upserts that add up, and the statistics read back."""

from __future__ import annotations

import threading
from datetime import date

import pytest

from firmforge.db import Database, DownloadCount, FileDownloads, ReleaseDownloads

A, B = "a" * 64, "b" * 64
D1, D2, D3 = date(2025, 3, 29), date(2025, 3, 30), date(2025, 3, 31)


def _a(day: date, file: str, count: int) -> DownloadCount:
    return DownloadCount(day, A, file, count, "openwrt", "24.10.2", "x86/64", "generic")


def _b(day: date, file: str, count: int) -> DownloadCount:
    return DownloadCount(day, B, file, count, "openwrt", "23.05.5", "ath79/generic", "c7-v5")


def test_upserts_add_to_the_same_day_and_file(db: Database):
    db.add_downloads([_a(D1, "img.bin", 2), _a(D1, "img.bin", 3), _a(D2, "img.bin", 1)])
    db.add_downloads([_a(D1, "img.bin", 4)])
    stats = db.download_stats(D1, D2)
    assert stats.per_day == [(D1, 9), (D2, 1)]
    assert stats.total == 10
    assert stats.top_files == [FileDownloads(A, "img.bin", "24.10.2", "x86/64", "generic", 10)]


def test_empty_input_and_empty_period(db: Database):
    db.add_downloads([])
    stats = db.download_stats(D1, D3)
    assert stats.per_day == [(D1, 0), (D2, 0), (D3, 0)]
    assert stats.total == 0
    assert stats.top_files == stats.versions == stats.targets == stats.profiles == []


def test_refuses_non_positive_counts_and_bad_periods(db: Database):
    with pytest.raises(ValueError, match="positive"):
        db.add_downloads([_a(D1, "img.bin", 0)])
    with pytest.raises(ValueError, match="empty period"):
        db.download_stats(D2, D1)


def test_statistics_per_day_file_and_release(db: Database):
    db.add_downloads([
        _a(D1, "img.bin", 5), _a(D2, "sha256sums", 1), _b(D2, "fw.bin", 3), _b(D3, "fw.bin", 2),
        _b(date(2025, 1, 1), "fw.bin", 100),  # outside the period
    ])
    stats = db.download_stats(D1, D3, top=2)
    assert stats.per_day == [(D1, 5), (D2, 4), (D3, 2)]
    assert stats.top_files == [
        FileDownloads(A, "img.bin", "24.10.2", "x86/64", "generic", 5),
        FileDownloads(B, "fw.bin", "23.05.5", "ath79/generic", "c7-v5", 5),
    ]
    assert stats.versions == [ReleaseDownloads("24.10.2", "", "", 6),
                              ReleaseDownloads("23.05.5", "", "", 5)]
    assert stats.targets == [ReleaseDownloads("", "x86/64", "", 6),
                             ReleaseDownloads("", "ath79/generic", "", 5)]
    assert stats.profiles == [ReleaseDownloads("24.10.2", "x86/64", "generic", 6),
                              ReleaseDownloads("23.05.5", "ath79/generic", "c7-v5", 5)]


def test_concurrent_writers_lose_nothing(database_url: str, db: Database):
    """Several processes' flushers (here: threads with their own engines) upsert the same rows."""
    writers, rounds = 4, 10

    def write() -> None:
        own = Database(database_url)
        try:
            for _ in range(rounds):
                own.add_downloads([_a(D1, "img.bin", 1), _b(D1, "fw.bin", 2)])
        finally:
            own.dispose()

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = db.download_stats(D1, D1)
    assert stats.total == writers * rounds * 3
