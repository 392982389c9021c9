"""Engine set-up per backend: SQLite tuned for several writing processes, PostgreSQL pooled.

Every engine is also safe across ``fork()`` (rq forks a work horse per job): a pooled connection
opened by another process is discarded on checkout instead of being shared.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import URL
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, StaticPool

__all__ = ["SQLITE_BUSY_TIMEOUT", "WRITE_OPTIONS", "is_memory_sqlite", "make_engine"]

SQLITE_BUSY_TIMEOUT = 30.0
"""Seconds a SQLite connection waits for another process's write lock before failing."""

_WRITE = "firmforge_write"
WRITE_OPTIONS: dict[str, Any] = {_WRITE: True}
"""Execution options of a write transaction: on SQLite it begins with ``BEGIN IMMEDIATE``."""


def make_engine(url: URL) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and real transactions."""
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    engine = create_engine(url, pool_pre_ping=True)
    _discard_connections_of_other_processes(engine)
    return engine


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _sqlite_engine(url: URL) -> Engine:
    options: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}
    memory = is_memory_sqlite(url)
    if memory:
        # One in-memory database, shared by the threads of this process (tests, one-offs).
        options = {"connect_args": {"check_same_thread": False}, "poolclass": StaticPool}
    engine = create_engine(url, **options)

    if not memory and not url.query.get("uri"):

        @event.listens_for(engine, "do_connect")
        def _create_directory(*_args: Any) -> None:
            # SQLite creates the database file on first connect; create its directory too.
            Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take BEGIN away from the sqlite3 module (it skips it before SELECT and DDL) and emit
        # it in "begin" below: transactions then cover reads and migrations too.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough with WAL, much faster
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A write transaction takes the write lock up front, so waiting for another process
        # goes through the busy timeout; a deferred read-then-write could fail at once with
        # SQLITE_BUSY when another process wrote in between.
        write = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    if not memory:  # an in-memory database does not survive a fork anyway
        _discard_connections_of_other_processes(engine)
    return engine


def _discard_connections_of_other_processes(engine: Engine) -> None:
    """SQLAlchemy's recipe for pools inherited through ``fork()`` ("Using Connection Pools
    with Multiprocessing"): the inherited DBAPI connection is dropped without being closed, so
    the parent's session is not ended from the child, and the pool opens a new one."""

    @event.listens_for(engine, "connect")
    def _remember_pid(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["pid"] = os.getpid()

    @event.listens_for(engine, "checkout")
    def _check_pid(
        _dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
    ) -> None:
        if record.info.get("pid") != os.getpid():
            # The concrete record and proxy have these attributes; the interfaces do not say so.
            record.dbapi_connection = proxy.dbapi_connection = None  # type: ignore[misc]
            raise exc.DisconnectionError("connection belongs to another process; reconnecting")
