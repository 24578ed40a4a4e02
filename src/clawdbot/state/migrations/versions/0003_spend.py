"""Spend: one row per metered request, written in batches by the spend writer.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Self-contained on purpose: a revision is history, so it must not import tables.py, which moves on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spend",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("service", sa.Text, nullable=True),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("user_id", sa.String(32), nullable=True),
        sa.Column("team_id", sa.String(32), nullable=True),
        sa.Column("request_id", sa.Text, nullable=True),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("cost", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_spend"),
    )
    op.create_index("ix_spend_at", "spend", ["at"])
    op.create_index("ix_spend_key_id_at", "spend", ["key_id", "at"])
    op.create_index("ix_spend_user_id_at", "spend", ["user_id", "at"])
    op.create_index("ix_spend_team_id_at", "spend", ["team_id", "at"])
    op.create_index("ix_spend_model_at", "spend", ["model", "at"])


def downgrade() -> None:
    op.drop_table("spend")
