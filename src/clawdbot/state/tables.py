"""The SQL schema (SQLAlchemy Core); the conventions of its values (ids, timestamps) are in ids.py.

This module describes the schema the migrations produce; the migrations, not `create_all`, create
it (tests compare the two). A change here needs a new revision in migrations/versions/."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from clawdbot.state.request_log_base import SEGMENTS

# Constraint names must be stable: a later migration (and SQLite's batch mode, which rebuilds tables)
# refers to them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

# JSONB on PostgreSQL (indexable, compact); JSON text elsewhere. none_as_null: Python None is SQL NULL,
# not the JSON literal `null`, so "no usage" is one thing.
Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

ID_LENGTH = 32  # "s_" + 16 base32 characters today; room for longer prefixes

chat_sessions = sa.Table(
    "chat_sessions",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("message_count", sa.Integer, nullable=False, server_default="0"),
    sa.Index(None, "user_id", "updated_at"),
)

chat_messages = sa.Table(
    "chat_messages",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column(
        "session_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("chat_sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    # Unique within a session: the store makes each message's time strictly later than the session's
    # last change, so (session_id, created_at) is the insertion order and "the newest" is one row.
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("usage", Json, nullable=True),
    sa.Column("trace", Json, nullable=True),
    sa.Index(None, "session_id", "created_at", unique=True),
)


# --- tenancy (migration 0002): teams, users, virtual keys, the admin audit log -------------------
# Limits shared by keys, users and teams: NULL means "no limit of this kind at this level". The
# enforcement (RPM/TPM, parallel requests, budgets) lives in its own modules; these are its inputs.


def _limit_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("rpm", sa.Integer, nullable=True),
        sa.Column("tpm", sa.Integer, nullable=True),
        sa.Column("max_parallel", sa.Integer, nullable=True),
        sa.Column("budget_usd", sa.Float, nullable=True),
        sa.Column("budget_period", sa.String(8), nullable=True),  # day | month | total
    ]


teams = sa.Table(
    "teams",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    *_limit_columns(),
    sa.Column("metadata", Json, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("team_id", sa.String(ID_LENGTH), sa.ForeignKey("teams.id", ondelete="SET NULL"), nullable=True),
    *_limit_columns(),
    sa.Column("metadata", Json, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    # HMAC-SHA256 of the key, hex: the only form of the key the database ever holds.
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("hint", sa.String(32), nullable=False),  # "sk-cb-AbCd...wXyZ", to tell keys apart in lists
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("user_id", sa.String(ID_LENGTH), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    sa.Column("team_id", sa.String(ID_LENGTH), sa.ForeignKey("teams.id", ondelete="SET NULL"), nullable=True),
    sa.Column("allowed_models", Json, nullable=True),  # NULL: every model
    *_limit_columns(),
    sa.Column("tags", Json, nullable=True),
    sa.Column("metadata", Json, nullable=True),
    sa.Column("expires_at", sa.BigInteger, nullable=True),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Index(None, "created_at"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("at", sa.BigInteger, nullable=False),  # unique per process (MonotonicMs): pages without ties
    sa.Column("actor", sa.Text, nullable=False),  # "master" or a key id
    sa.Column("action", sa.String(32), nullable=False),  # e.g. key.create, user.delete
    sa.Column("target_type", sa.String(16), nullable=False),
    sa.Column("target_id", sa.Text, nullable=True),  # a record's id, or a config path (migration 0008)
    sa.Column("before", Json, nullable=True),  # redacted copies of the record
    sa.Column("after", Json, nullable=True),
    sa.Index(None, "at"),
)


# --- spend (migration 0003): one row per metered request ---------------------------------------
# No foreign keys: spend outlives the keys, users and teams it names (a deleted user's spend still
# adds up under its id), and a batch must never fail because an owner went away meanwhile.

SPEND_COVERED = ["day", "model", "prompt_tokens", "completion_tokens", "cost"]

spend = sa.Table(
    "spend",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # SpendRecord.id: replaying a batch inserts nothing twice
    sa.Column("at", sa.BigInteger, nullable=False),
    # 'YYYY-MM-DD' (UTC) of `at`, stored: grouping by day is then the same plain GROUP BY on every database.
    sa.Column("day", sa.String(10), nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("service", sa.Text, nullable=True),
    sa.Column("key_id", sa.String(ID_LENGTH), nullable=True),
    sa.Column("user_id", sa.String(ID_LENGTH), nullable=True),
    sa.Column("team_id", sa.String(ID_LENGTH), nullable=True),
    sa.Column("request_id", sa.Text, nullable=True),
    sa.Column("prompt_tokens", sa.Integer, nullable=False),
    sa.Column("completion_tokens", sa.Integer, nullable=False),
    sa.Column("cost", sa.BigInteger, nullable=False),  # micro-dollars
    sa.Index(None, "at"),
    # PostgreSQL: an owner's report and budget seed read its rows from the index alone (migration 0009)
    sa.Index(None, "key_id", "at", postgresql_include=SPEND_COVERED),
    sa.Index(None, "user_id", "at", postgresql_include=SPEND_COVERED),
    sa.Index(None, "team_id", "at", postgresql_include=SPEND_COVERED),
    sa.Index(None, "model", "at"),
)


# --- stored responses (migration 0004): OpenAI's Responses dialect with `store` ----------------

responses = sa.Table(
    "responses",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # resp_ + 48 hex
    sa.Column("owner", sa.Text, nullable=False),  # the key id, or "master" / "anonymous"
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("response", Json, nullable=False),
    sa.Column("input_items", Json, nullable=False),
    sa.Column("conversation", Json, nullable=False),
    sa.Index(None, "owner", "created_at"),
    sa.Index(None, "expires_at"),
)


# --- the request log (migrations 0005, 0006, 0007): one row per request, bounded by retention and a row budget
# A ring of SEGMENTS tables of the same shape (request_log_0 ..): rows go to the active one until it
# holds its share of the row budget, then the next one is emptied in one statement and becomes active;
# retention empties a segment once its newest row has expired. Emptying a table costs its pages, not
# its rows: deleting rows one by one cost as much as writing them (state/request_log_sql.py).
# No foreign keys, as spend: a record outlives the key that made it. `seq` is the insertion order
# across the ring (the ties of `at` in a page), given by the writer from request_log_segments. What is
# filtered on has a column; the rest of the record is one JSON object (`detail`): a row per request is
# written on the request path's CPU, and SQLite's cost grows with the columns (half as much as 27
# columns, measured).

def _request_log_segment(n: int) -> sa.Table:
    return sa.Table(
        f"request_log_{n}",
        metadata,
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(128), nullable=False),  # the request id (a client may send the same twice)
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("key_id", sa.String(ID_LENGTH), nullable=True),
        sa.Column("model", sa.Text, nullable=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("detail", Json, nullable=False),  # the rest of the record (state/request_log_base.py)
        sa.Column("request_body", sa.Text, nullable=True),  # only with log_bodies, capped
        sa.Column("response_body", sa.Text, nullable=True),
        # One index (migration 0007): each index is a B-tree more written per request, on the
        # gateway's CPU when the log is a SQLite file. Searches by key, model or status walk this
        # one newest first. None on `id`: request ids are random, and a random key's index dirties
        # a page per row written (3x the cost of the rest of the row on SQLite, measured); GET by id
        # reads the ring.
        sa.Index(None, "at", "seq"),
    )


request_log_tables = tuple(_request_log_segment(n) for n in range(SEGMENTS))

# One row per segment. The active segment is the one with the highest first_seq; the next seq to
# write is its first_seq + rows. A writer locks these rows (SQLite: its write transaction) while it
# writes, so replicas sharing PostgreSQL agree on the active segment and never reuse a seq.
request_log_segments = sa.Table(
    "request_log_segments",
    metadata,
    sa.Column("segment", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("first_seq", sa.BigInteger, nullable=False),  # the seq of its first row, this time round
    sa.Column("rows", sa.BigInteger, nullable=False),  # rows in it (seqs first_seq .. first_seq + rows - 1)
    sa.Column("opened_at", sa.BigInteger, nullable=False),  # when it became active, ms since the epoch
)
