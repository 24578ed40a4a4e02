"""Bulk loaders for bench/cost_growth.py: virtual keys, spend rows and chat sessions written straight
into the tables the project's migrations created (COPY, or INSERT .. SELECT on the server), never
through the admin API. Keys are hashed with the project's KeyHasher, so lookups by hash are real.

Ids are deterministic (`k_` + 16 hex digits of the key's number, `u_`, `t_` likewise), so the spend
rows name the same keys, users and teams the key tables hold."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
from collections.abc import Iterator
from typing import Any

import asyncpg

from clawdbot.tenancy.keys import PREFIX, KeyHasher, hint

BATCH = 50_000
USERS = 1000  # keys belong to users round robin, users to teams round robin
TEAMS = 50
SECRET = b"cost-growth-bench-secret"
KEY_COLUMNS = ("id", "key_hash", "hint", "name", "user_id", "team_id", "rpm", "tpm", "budget_usd",
               "budget_period", "created_at", "updated_at")
SESSION_COLUMNS = ("id", "user_id", "title", "model", "created_at", "updated_at", "message_count")


def key_id(i: int) -> str:
    return f"k_{i:016x}"


def user_id(i: int) -> str:
    return f"u_{i:016x}"


def team_id(i: int) -> str:
    return f"t_{i:016x}"


def token(i: int) -> str:
    """Key number i's secret: deterministic, so a lookup sample needs no list of a million keys."""
    return PREFIX + base64.urlsafe_b64encode(hashlib.blake2b(i.to_bytes(8, "big"), digest_size=32).digest()
                                             ).rstrip(b"=").decode()


def owners() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(teams, users): a team limits requests per minute, a user holds a monthly budget."""
    teams = [(team_id(t), f"team-{t}", 10_000, 1, 1) for t in range(TEAMS)]
    users = [(user_id(u), f"user-{u}", team_id(u % TEAMS), 25.0, "month", 1, 1) for u in range(USERS)]
    return teams, users


def key_rows(start: int, stop: int, hasher: KeyHasher) -> Iterator[tuple[Any, ...]]:
    for i in range(start, stop):
        secret = token(i)
        yield (key_id(i), hasher.hash(secret), hint(secret), f"key {i}", user_id(i % USERS), None,
               600, 200_000, None, None, 1_700_000_000_000 + i, 1_700_000_000_000 + i)


def batches(start: int, stop: int) -> Iterator[tuple[int, int]]:
    for a in range(start, stop, BATCH):
        yield a, min(stop, a + BATCH)


# --- PostgreSQL -----------------------------------------------------------------------------------

async def pg_owners(conn: asyncpg.Connection) -> None:
    teams, users = owners()
    await conn.copy_records_to_table("teams", records=teams, columns=("id", "name", "rpm", "created_at",
                                                                       "updated_at"))
    await conn.copy_records_to_table("users", records=users, columns=("id", "name", "team_id", "budget_usd",
                                                                       "budget_period", "created_at", "updated_at"))


async def pg_keys(conn: asyncpg.Connection, start: int, stop: int, hasher: KeyHasher) -> None:
    if start == 0:
        await pg_owners(conn)
    for a, b in batches(start, stop):
        await conn.copy_records_to_table("api_keys", records=list(key_rows(a, b, hasher)), columns=KEY_COLUMNS)
    await conn.execute("ANALYZE api_keys")


async def _spend_indexes(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    rows = await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'spend' "
                            "AND indexname <> 'pk_spend' ORDER BY indexname")
    return [(r["indexname"], r["indexdef"]) for r in rows]


SPEND_INSERT = """
INSERT INTO spend (id, at, day, model, service, key_id, user_id, team_id, request_id,
                   prompt_tokens, completion_tokens, cost)
SELECT 'sp_bench' || lpad(to_hex(g), 12, '0'), at,
       to_char(to_timestamp(at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
       'model-' || m, 'service-' || (m % 5),
       'k_' || lpad(to_hex(k), 16, '0'), 'u_' || lpad(to_hex(k % $4), 16, '0'),
       't_' || lpad(to_hex((k % $4) % $5), 16, '0'), 'req-' || g,
       pt, ct, (pt * (1 + m) + ct * (4 + m)) / 10
FROM (SELECT g, ($3::float8 - g * $6::float8)::bigint AS at,
             floor($7 * power(random(), 3))::int AS k, floor(20 * power(random(), 2))::int AS m,
             (20 + random() * 2000)::int AS pt, (random() * 600)::int AS ct
      FROM generate_series($1::bigint, $2::bigint - 1) AS g) AS s
"""


async def pg_spend(conn: asyncpg.Connection, start: int, stop: int, *, first_ms: int, step_ms: float,
                   active_keys: int, progress: Any) -> float:
    """Rows start..stop-1 of a table whose row g is at first_ms - g * step_ms: newest first, so a
    partly loaded table holds the most recent days (a window's rows are the same at every stage;
    the heap is in reverse time order, as correlated with `at` as one written in order). The
    secondary indexes are dropped for the load and built again from their own
    definitions (what pg_restore does), then VACUUM ANALYZE, as autovacuum would. Returns the
    seconds the index builds took."""
    import time

    indexes = await _spend_indexes(conn)
    for name, _ in indexes:
        await conn.execute(f'DROP INDEX "{name}"')
    chunk = 1_000_000
    for a in range(start, stop, chunk):
        b = min(stop, a + chunk)
        await conn.execute(SPEND_INSERT, a, b, first_ms, USERS, TEAMS, step_ms, active_keys)
        progress(f"spend rows {b:,}/{stop:,}")
    began = time.perf_counter()
    await conn.execute("SET maintenance_work_mem = '256MB'")
    for _, definition in indexes:
        await conn.execute(definition)
    built = time.perf_counter() - began
    await conn.execute("VACUUM (ANALYZE) spend")
    return built


async def pg_sessions(conn: asyncpg.Connection, user: str, start: int, stop: int, users: int) -> None:
    """Sessions start..stop-1: all of `user`'s, and as many again spread over `users` other users."""
    for a, b in batches(start, stop):
        heavy = [(f"s_h{i:014x}", user, f"chat {i}", "m", 1_700_000_000_000 + i, 1_700_000_000_000 + 2 * i, 4)
                 for i in range(a, b)]
        spread = [(f"s_s{i:014x}", f"bench-user-{i % users}", f"chat {i}", "m", 1_700_000_000_000 + i,
                   1_700_000_000_000 + 2 * i + 1, 4) for i in range(a, b)]
        await conn.copy_records_to_table("chat_sessions", records=heavy + spread, columns=SESSION_COLUMNS)
    await conn.execute("ANALYZE chat_sessions")


# --- SQLite (the project's migrated file, loaded with the standard library) ------------------------

def sqlite_keys(path: str, start: int, stop: int, hasher: KeyHasher) -> None:
    with sqlite3.connect(path) as db:
        if start == 0:
            teams, users = owners()
            db.executemany("INSERT INTO teams (id, name, rpm, created_at, updated_at) VALUES (?,?,?,?,?)", teams)
            db.executemany("INSERT INTO users (id, name, team_id, budget_usd, budget_period, created_at, updated_at)"
                           " VALUES (?,?,?,?,?,?,?)", users)
        marks = ",".join("?" * len(KEY_COLUMNS))
        for a, b in batches(start, stop):
            db.executemany(f"INSERT INTO api_keys ({','.join(KEY_COLUMNS)}) VALUES ({marks})",
                           key_rows(a, b, hasher))
        db.execute("ANALYZE")


def sqlite_sessions(path: str, user: str, start: int, stop: int, users: int) -> None:
    with sqlite3.connect(path) as db:
        marks = ",".join("?" * len(SESSION_COLUMNS))
        sql = f"INSERT INTO chat_sessions ({','.join(SESSION_COLUMNS)}) VALUES ({marks})"
        for a, b in batches(start, stop):
            db.executemany(sql, ((f"s_h{i:014x}", user, f"chat {i}", "m", 1_700_000_000_000 + i,
                                  1_700_000_000_000 + 2 * i, 4) for i in range(a, b)))
            db.executemany(sql, ((f"s_s{i:014x}", f"bench-user-{i % users}", f"chat {i}", "m",
                                  1_700_000_000_000 + i, 1_700_000_000_000 + 2 * i + 1, 4) for i in range(a, b)))
        db.execute("ANALYZE")


async def pg_owner_indexes(conn: asyncpg.Connection, include: str) -> None:
    """The owner indexes rebuilt with `include` ("" for their shape before migration 0009)."""
    await conn.execute("SET maintenance_work_mem = '256MB'")
    for owner in ("key_id", "user_id", "team_id"):
        await conn.execute(f"DROP INDEX ix_spend_{owner}_at")
        await conn.execute(f"CREATE INDEX ix_spend_{owner}_at ON spend ({owner}, at) {include}")
    await conn.execute("VACUUM (ANALYZE) spend")
