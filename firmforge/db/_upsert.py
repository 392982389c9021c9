"""Adding to counters: ``INSERT … ON CONFLICT (key) DO UPDATE SET n = n + excluded.n``.

Download counts and build-request counts are written in batches as one statement per table,
on SQLite and PostgreSQL alike; a new row takes the other columns from the first batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from firmforge.db._models import Base

__all__ = ["add_to_counters"]


def add_to_counters(session: Session, model: type[Base], rows: Sequence[dict[str, Any]],
                    keys: Sequence[str], counter: str) -> None:
    """Insert ``rows`` or, for an existing ``keys``, add their ``counter`` to the row's.

    Give each key once, in key order (so concurrent writers lock rows in the same order).
    """
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = upsert(model).values(list(rows))
    column = model.__table__.c[counter]  # type: ignore[attr-defined]
    statement = statement.on_conflict_do_update(
        index_elements=list(keys), set_={counter: column + statement.excluded[counter]}
    )
    session.execute(statement)
