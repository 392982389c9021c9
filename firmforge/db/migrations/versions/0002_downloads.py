"""download_counts: downloads per stored file per UTC day

Revision ID: 0002
Revises: 0001
Created: 2026-07-02

Self-contained on purpose: the models change, this revision must not.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "download_counts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("bin_dir", sa.String(64), nullable=False),
        sa.Column("file", sa.String(255), nullable=False),
        sa.Column("distro", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("profile", sa.String(255), nullable=False),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "bin_dir", "file", name=op.f("pk_download_counts")),
    )


def downgrade() -> None:
    op.drop_table("download_counts")
