from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from firmforge.db import Database
from firmforge.db._migrate import alembic_config
from firmforge.db._models import Base

MIGRATORS = 4


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _current_revision(database: Database) -> str | None:
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_migrate_brings_an_empty_database_to_head(database_url: str):
    database = Database(database_url)
    assert _current_revision(database) is None
    database.migrate()
    assert _current_revision(database) == _head()
    assert "builds" in inspect(database.engine).get_table_names()
    database.dispose()


def test_migrate_is_idempotent_and_keeps_data(database_url: str):
    first = Database(database_url)
    first.migrate()
    build_id = first.record_queued("a" * 64, {}, "openwrt", "24.10.2", "x86/64", "generic", [])
    first.migrate()
    second = Database(database_url)
    second.migrate()
    assert _current_revision(second) == _head()
    record = second.latest_build("a" * 64)
    assert record is not None
    assert record.id == build_id
    first.dispose()
    second.dispose()


def test_models_match_the_migrations(db: Database):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


# Imports everything, says so, then migrates when told: the start line of a race.
_MIGRATOR = """
import sys
from firmforge.db import Database
database = Database(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
database.migrate()
database.dispose()
"""


def test_migrators_in_several_processes_at_once(database_url: str):
    migrators = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATOR, database_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(MIGRATORS)
    ]
    for migrator in migrators:
        assert migrator.stdout is not None
        assert migrator.stdout.readline() == "ready\n"
    for migrator in migrators:
        assert migrator.stdin is not None
        migrator.stdin.write("go\n")
        migrator.stdin.flush()
    errors = [migrator.communicate(timeout=120)[1] for migrator in migrators]
    assert [migrator.returncode for migrator in migrators] == [0] * MIGRATORS, errors
    database = Database(database_url)
    assert _current_revision(database) == _head()
    database.dispose()


def test_migrate_works_from_any_working_directory(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    database = Database(database_url)
    database.migrate()
    assert _current_revision(database) == _head()
    database.dispose()


def test_downgrade_to_base_and_back(db: Database):
    with db.engine.begin() as connection:
        command.downgrade(alembic_config(connection=connection), "base")
    assert "builds" not in inspect(db.engine).get_table_names()
    assert _current_revision(db) is None
    db.migrate()
    assert _current_revision(db) == _head()
    assert db.recent(1) == []
