"""The request log's tables keep one index, `(at, seq)`: the `(key_id, at)` and `(model, at)` indexes
go. Each cost every logged request a write into two more B-trees (on a SQLite file ~2 us of the
writer's CPU a row, a quarter of its work: docs/benchmarks.md), while a search by key or model is
an admin's occasional read, answered by walking `(at, seq)` newest first.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

Self-contained on purpose: a revision is history, so it must not import tables.py, which moves on.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SEGMENTS = 8
DROPPED = (("key_id", "at"), ("model", "at"))


def upgrade() -> None:
    for n in range(SEGMENTS):
        for columns in DROPPED:
            op.drop_index(f"ix_request_log_{n}_{'_'.join(columns)}", table_name=f"request_log_{n}")


def downgrade() -> None:
    for n in range(SEGMENTS):
        for columns in DROPPED:
            op.create_index(f"ix_request_log_{n}_{'_'.join(columns)}", f"request_log_{n}", list(columns))
