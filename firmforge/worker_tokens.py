"""Remote workers' tokens: made, listed and revoked by the server's admin, checked per request.

A token is ``ffw_`` and 43 URL-safe characters (256 random bits), shown once when made. The
database keeps only its SHA-256: tokens are random, so a plain hash cannot be reversed, and a
lookup is one indexed query.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from firmforge.db import Database
from firmforge.db._models import WorkerTokenRow

__all__ = ["TokenInfo", "WorkerTokens"]

_PREFIX = "ffw_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_LAST_USED_PRECISION = timedelta(minutes=1)  # at most one write per token and minute


@dataclass(frozen=True)
class TokenInfo:
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _info(row: WorkerTokenRow) -> TokenInfo:
    return TokenInfo(row.name, row.created_at, row.last_used_at, row.revoked_at)


class WorkerTokens:
    def __init__(self, database: Database) -> None:
        self.database = database

    def create(self, name: str) -> str:
        """A new token for worker ``name``; raises ``ValueError`` for a bad or taken name."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a usable worker name: {name!r} (letters, digits, . _ -)")
        token = _PREFIX + secrets.token_urlsafe(32)
        row = WorkerTokenRow(name=name, token_sha256=_digest(token),
                             created_at=datetime.now(UTC))
        try:
            with Session(self.database.engine) as session, session.begin():
                session.add(row)
        except IntegrityError as exc:
            raise ValueError(f"a token named {name!r} exists already") from exc
        return token

    def list(self) -> list[TokenInfo]:
        with Session(self.database.engine) as session:
            rows = session.scalars(select(WorkerTokenRow).order_by(WorkerTokenRow.name))
            return [_info(row) for row in rows]

    def revoke(self, name: str) -> bool:
        """Revoke the token ``name``; False when there is no such live token."""
        with Session(self.database.engine) as session, session.begin():
            row = session.scalars(select(WorkerTokenRow).where(
                WorkerTokenRow.name == name, WorkerTokenRow.revoked_at.is_(None))).first()
            if row is None:
                return False
            row.revoked_at = datetime.now(UTC)
        return True

    def check(self, token: str) -> str | None:
        """The worker name of a live ``token``, or None."""
        if not token.startswith(_PREFIX):
            return None
        now = datetime.now(UTC)
        with Session(self.database.engine) as session, session.begin():
            row = session.scalars(select(WorkerTokenRow).where(
                WorkerTokenRow.token_sha256 == _digest(token))).first()
            if row is None or row.revoked_at is not None:
                return None
            if row.last_used_at is None or now - row.last_used_at > _LAST_USED_PRECISION:
                row.last_used_at = now
            return row.name
