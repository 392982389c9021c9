"""What SQLite needs beyond the shared tests: WAL, a busy timeout, a data dir to live in."""

from __future__ import annotations

from pathlib import Path

from firmforge.db import Database
from firmforge.db._engine import SQLITE_BUSY_TIMEOUT


def test_the_directory_of_the_database_is_created_on_first_use(tmp_path: Path):
    path = tmp_path / "new" / "data" / "firmforge.db"
    database = Database(f"sqlite:///{path}")
    assert not path.parent.exists()  # nothing happens before the first connection
    database.migrate()
    assert path.is_file()
    database.dispose()


def test_wal_mode_and_busy_timeout(tmp_path: Path):
    database = Database(f"sqlite:///{tmp_path / 'firmforge.db'}")
    database.migrate()
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        timeout_ms = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        assert timeout_ms == SQLITE_BUSY_TIMEOUT * 1000
    database.dispose()


def test_in_memory_database_is_shared_by_its_sessions():
    database = Database("sqlite://")
    database.migrate()
    build_id = database.record_queued("b" * 64, {}, "openwrt", "24.10.2", "x86/64", "generic", [])
    assert database.latest_build("b" * 64) is not None
    assert database.recent(1)[0].id == build_id
    database.dispose()
