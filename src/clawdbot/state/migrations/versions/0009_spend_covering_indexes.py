"""The spend table's `(key_id, at)`, `(user_id, at)` and `(team_id, at)` indexes carry the columns a
per-key, per-user or per-team report sums and groups by (PostgreSQL's INCLUDE), so the budget seed
(`spent`), the control panel's per-key chart (by day) and `clawdbot spend --key/--user/--team` read
that owner's rows from the index alone: their cost follows the owner's rows, not the table's.
Without it PostgreSQL walked `(at)` or the whole table: over 10M rows a busy key's month took 18.6
ms, then 2.8 ms; a team's all-time report by model 507 ms, then 44 ms (docs/benchmarks.md, issue 17:
cost growth).

SQLite has no INCLUDE: nothing changes there. The indexes are rebuilt in the migration's
transaction, which holds off spend inserts meanwhile (~25 s per index at 10M rows on 2 cores); the
spend writer's journal keeps what arrives until then.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

Self-contained on purpose: a revision is history, so it must not import tables.py, which moves on.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

OWNERS = ("key_id", "user_id", "team_id")
COVERED = ["day", "model", "prompt_tokens", "completion_tokens", "cost"]


def _rebuild(include: list[str] | None) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for owner in OWNERS:
        name = f"ix_spend_{owner}_at"
        op.drop_index(name, table_name="spend")
        op.create_index(name, "spend", [owner, "at"], postgresql_include=include or [])


def upgrade() -> None:
    _rebuild(COVERED)


def downgrade() -> None:
    _rebuild(None)
