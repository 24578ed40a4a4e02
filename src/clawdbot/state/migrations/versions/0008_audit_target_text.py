"""The audit log's `target_id` holds any length: the control panel's config edits name their target
as `models.<name>` or `services.<name>`, longer than a record id's 32 characters (PostgreSQL refused
such an entry; SQLite does not enforce a VARCHAR's length).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05

Self-contained on purpose: a revision is history, so it must not import tables.py, which moves on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("target_id", type_=sa.Text(), existing_type=sa.String(32), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("target_id", type_=sa.String(32), existing_type=sa.Text(), existing_nullable=True)
