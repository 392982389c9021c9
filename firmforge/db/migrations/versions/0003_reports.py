"""device_reports: routers report whether an upgraded image works

Revision ID: 0003
Revises: 0002
Created: 2026-07-03

Self-contained on purpose: the models change, this revision must not.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "device_reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.Column("distro", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("profile", sa.String(255), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_reports")),
    )
    op.create_index(
        op.f("ix_device_reports_version_target_profile"),
        "device_reports",
        ["version", "target", "profile"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_device_reports_version_target_profile"), table_name="device_reports")
    op.drop_table("device_reports")
