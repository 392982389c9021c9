"""build_requests, build_request_packages, queue_samples: what the statistics page plots

Revision ID: 0004
Revises: 0003
Created: 2026-11-28

Build requests are counted per UTC day, request hash and outcome (``new``, ``cache_hit``,
``failed``), and the packages a request added to its device's defaults per day and name, so
a busy day is a few thousand rows, not millions. Queue samples are the queue length over time.

Self-contained on purpose: the models change, this revision must not.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "build_requests",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("distro", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("profile", sa.String(255), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "request_hash", "outcome", name=op.f("pk_build_requests")),
    )
    op.create_table(
        "build_request_packages",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("package", sa.String(255), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "package", name=op.f("pk_build_request_packages")),
    )
    op.create_table(
        "queue_samples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sampled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_samples")),
    )
    op.create_index(op.f("ix_queue_samples_sampled_at"), "queue_samples", ["sampled_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_queue_samples_sampled_at"), table_name="queue_samples")
    op.drop_table("queue_samples")
    op.drop_table("build_request_packages")
    op.drop_table("build_requests")
