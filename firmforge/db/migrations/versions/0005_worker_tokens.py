"""worker_tokens: the credentials of remote build workers (SHA-256 of each token only)

Revision ID: 0005
Revises: 0004
Created: 2026-11-28

Self-contained on purpose: the models change, this revision must not.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "worker_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_worker_tokens_name")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_worker_tokens_token_sha256")),
    )


def downgrade() -> None:
    op.drop_table("worker_tokens")
