"""builds: one row per build attempt

Revision ID: 0001
Revises:
Created: 2026-07-01

Self-contained on purpose: the models change, this revision must not.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.JSON:
    return sa.JSON(none_as_null=True)


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "builds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("request", _json(), nullable=False),
        sa.Column("distro", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("profile", sa.String(255), nullable=False),
        sa.Column("packages", _json(), nullable=False),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("imagebuilder", _json(), nullable=True),
        sa.Column("manifest", _json(), nullable=True),
        sa.Column("images", _json(), nullable=True),
        sa.Column("bin_dir", sa.String(255), nullable=True),
        sa.Column("stage_timings", _json(), nullable=False),
        sa.Column("enqueued_at", _utc(), nullable=False),
        sa.Column("started_at", _utc(), nullable=True),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("build_cmd", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_builds")),
    )
    op.create_index(op.f("ix_builds_request_hash"), "builds", ["request_hash"])
    op.create_index(op.f("ix_builds_status"), "builds", ["status"])
    op.create_index(op.f("ix_builds_enqueued_at"), "builds", ["enqueued_at"])


def downgrade() -> None:
    op.drop_table("builds")
