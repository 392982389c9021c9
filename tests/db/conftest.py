"""Every db test runs on SQLite (a temporary file) and, when ``FIRMFORGE_TEST_DATABASE_URL``
is set, on PostgreSQL in a schema of its own that is dropped afterwards."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from firmforge.db import Database

PG_ENV = "FIRMFORGE_TEST_DATABASE_URL"

# A session time zone far from UTC (+13:45 in summer): values read back prove the conversion.
PG_SESSION_TIME_ZONE = "Pacific/Chatham"


class Clock:
    """A settable aware clock for ``Database(clock=...)``."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _pg_schema_url(base: str, schema: str) -> str:
    url = make_url(base)
    given = url.query.get("options", ())
    options = [given] if isinstance(given, str) else list(given)
    options += [f"-csearch_path={schema}", f"-ctimezone={PG_SESSION_TIME_ZONE}"]
    return url.update_query_dict({"options": " ".join(options)}).render_as_string(
        hide_password=False
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'firmforge.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    schema = f"firmforge_test_{secrets.token_hex(6)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        yield _pg_schema_url(base, schema)
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        admin.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2025, 3, 30, 0, 30, tzinfo=UTC))


@pytest.fixture
def db(database_url: str, clock: Clock) -> Iterator[Database]:
    """A migrated database whose clock the test moves."""
    database = Database(database_url, clock=clock)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")
