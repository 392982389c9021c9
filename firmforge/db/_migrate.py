"""Run the Alembic migrations shipped in this package, safely from several processes at once.

No ``alembic.ini`` is involved: the configuration is built here and points at the
``firmforge.db:migrations`` package resource, so it works from any working directory. To write
a new revision against a development database::

    from alembic import command
    from firmforge.db._migrate import alembic_config

    command.revision(
        alembic_config(url="sqlite:///dev.db"), "what changes", autogenerate=True, rev_id="0002"
    )

then ``ruff check --fix`` and ``ruff format`` the new file, and read it: autogenerate is a draft.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.engine import URL

from firmforge.db._engine import WRITE_OPTIONS, is_memory_sqlite

__all__ = ["MIGRATIONS", "alembic_config", "upgrade"]

MIGRATIONS = "firmforge.db:migrations"
"""The migration scripts, as a package resource (``env.py``, ``versions/``)."""

_PG_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"firmforge.db.migrate").digest()[:8], "big", signed=True
)
"""The PostgreSQL advisory lock held by whoever migrates (one key per database)."""


def alembic_config(*, connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic configuration for our migrations, on a connection or on a URL."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> None:
    """``alembic upgrade head`` in one transaction, one migrator at a time.

    Migrators queue on a lock: PostgreSQL's transaction-scoped advisory lock, or for SQLite a
    ``flock`` on ``<database>.migrate-lock`` plus the write lock of ``BEGIN IMMEDIATE``. Whoever
    comes second finds the schema at head and does nothing.
    """
    with _sqlite_file_lock(engine.url), engine.connect() as connection:
        connection.execution_options(**WRITE_OPTIONS)
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
            command.upgrade(alembic_config(connection=connection), "head")


def _sqlite_file_lock(url: URL) -> AbstractContextManager[None]:
    if url.get_backend_name() != "sqlite" or is_memory_sqlite(url) or url.query.get("uri"):
        return nullcontext()  # BEGIN IMMEDIATE alone serialises these
    database = Path(str(url.database))
    return _flock(database.with_name(database.name + ".migrate-lock"))


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield
