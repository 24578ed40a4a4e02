"""The request log becomes a ring of eight tables (request_log_0 .. request_log_7) and a table of
their state (request_log_segments), so that keeping it bounded empties a table instead of deleting
rows one by one. The rows already logged move to segment 0, keeping their seq.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

Self-contained on purpose: a revision is history, so it must not import tables.py, which moves on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
SEGMENTS = 8
COLUMNS = "seq, id, at, key_id, model, status, latency_ms, detail, request_body, response_body"


def _create_log_table(name: str, autoincrement: bool) -> None:
    op.create_table(
        name,
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False,
                  autoincrement=autoincrement),
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("model", sa.Text, nullable=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("detail", Json, nullable=False),
        sa.Column("request_body", sa.Text, nullable=True),
        sa.Column("response_body", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("seq", name=f"pk_{name}"),
    )
    op.create_index(f"ix_{name}_at_seq", name, ["at", "seq"])
    op.create_index(f"ix_{name}_key_id_at", name, ["key_id", "at"])
    op.create_index(f"ix_{name}_model_at", name, ["model", "at"])


def upgrade() -> None:
    for n in range(SEGMENTS):
        _create_log_table(f"request_log_{n}", autoincrement=False)
    segments = op.create_table(
        "request_log_segments",
        sa.Column("segment", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("opened_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("segment", name="pk_request_log_segments"),
    )
    conn = op.get_bind()
    conn.execute(sa.text(f"INSERT INTO request_log_0 ({COLUMNS}) SELECT {COLUMNS} FROM request_log"))
    low, high, count, oldest = conn.execute(
        sa.text("SELECT min(seq), max(seq), count(*), min(at) FROM request_log")).one()
    # Segment 0 is active and holds what was logged; the seqs it holds may have gaps (PostgreSQL's
    # sequence skipped what failed), so it counts from the lowest as if they had none: the next seq
    # written is past the highest. The others are empty, with a lower first_seq than the active one.
    # opened_at: when a segment's first row was written (this round).
    first = 1 if low is None else int(low)
    rows = 0 if high is None else int(high) - first + 1
    assert rows >= int(count or 0)
    opened = 0 if oldest is None else int(oldest)
    op.bulk_insert(segments, [{"segment": 0, "first_seq": first, "rows": rows, "opened_at": opened}]
                   + [{"segment": n, "first_seq": 0, "rows": 0, "opened_at": 0} for n in range(1, SEGMENTS)])
    op.drop_table("request_log")


def downgrade() -> None:
    _create_log_table("request_log", autoincrement=True)
    conn = op.get_bind()
    for n in range(SEGMENTS):
        conn.execute(sa.text(f"INSERT INTO request_log ({COLUMNS}) SELECT {COLUMNS} FROM request_log_{n}"))
    if conn.dialect.name == "postgresql":  # the sequence behind seq goes on past what was copied
        conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('request_log', 'seq'), "
                             "coalesce((SELECT max(seq) FROM request_log), 0) + 1, false)"))
    op.drop_table("request_log_segments")
    for n in range(SEGMENTS):
        op.drop_table(f"request_log_{n}")
