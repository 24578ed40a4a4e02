"""The request log: one row per request, bounded by retention and a row budget.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10

Self-contained on purpose: a revision is history, so it must not import tables.py, which moves on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "request_log",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False, autoincrement=True),
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("model", sa.Text, nullable=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("detail", Json, nullable=False),
        sa.Column("request_body", sa.Text, nullable=True),
        sa.Column("response_body", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_request_log"),
    )
    op.create_index("ix_request_log_at_seq", "request_log", ["at", "seq"])
    op.create_index("ix_request_log_key_id_at", "request_log", ["key_id", "at"])
    op.create_index("ix_request_log_model_at", "request_log", ["model", "at"])


def downgrade() -> None:
    op.drop_table("request_log")
