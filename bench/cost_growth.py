"""Issue 17, cost growth: what key lookup and limit checks, the spend report and the chat session
list cost as the tables grow, on the project's own stores (state/) and authenticator (tenancy/).

    uv run python bench/cost_growth.py                     # quick: 20k keys, 200k spend rows, 5k sessions
    uv run python bench/cost_growth.py --keys 1000000 --spend-rows 10000000 --sessions 100000

Each part is measured at a small size and at the given one (keys: 1k and N; spend: N/10 and N;
sessions: 1k and N), loading the difference in between. PostgreSQL on 127.0.0.1 only: the script
creates the database clawdbot_bench_growth (migrated by the project), and drops it at the end
(--keep leaves it). SQLite (keys and sessions): a migrated file in a temporary directory. Full
EXPLAIN output goes to --plans. Results print as markdown tables."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from cost_growth_load import (
    SECRET,
    USERS,
    key_id,
    pg_keys,
    pg_owner_indexes,
    pg_sessions,
    pg_spend,
    sqlite_keys,
    sqlite_sessions,
    team_id,
    token,
    user_id,
)

from clawdbot.state.chat_sql import SESSION_COLUMNS, SqlChatStore
from clawdbot.state.keys_sql import KEY_COLUMNS, SqlKeyStore
from clawdbot.state.spend_sql import SCOPE_COLUMNS, SqlSpendStore, _window, report_query
from clawdbot.state.sql import Database
from clawdbot.state.tables import SPEND_COVERED, api_keys, chat_sessions, spend
from clawdbot.tenancy.authn import KeyAuthenticator
from clawdbot.tenancy.budgets import MemoryBudgets
from clawdbot.tenancy.keys import KeyHasher
from clawdbot.tenancy.limits import MemoryLimiter

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "clawdbot_bench_growth"
MASTER = "sk-bench-master"
SAMPLES = 2000
HEAVY_USER = "bench-heavy"
DAY_MS = 86_400_000


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text} ({load()})", file=sys.stderr, flush=True)


def stats(ns: list[int]) -> dict[str, float]:
    ns = sorted(ns)
    at = lambda q: ns[min(len(ns) - 1, int(q * len(ns)))] / 1000  # noqa: E731
    return {"p50": at(0.5), "p99": at(0.99), "max": ns[-1] / 1000}


async def sample(fn: Callable[[int], Awaitable[Any]], n: int = SAMPLES) -> dict[str, float]:
    """Latency of n calls (fn(i)) in microseconds."""
    out = []
    for i in range(n):
        t = time.perf_counter_ns()
        await fn(i)
        out.append(time.perf_counter_ns() - t)
    return stats(out)


def table(title: str, head: list[str], rows: list[list[Any]]) -> None:
    print(f"\n{title} ({load()})\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|")
    for row in rows:
        print("| " + " | ".join(f"{c:,.0f}" if isinstance(c, float) and c >= 100 else
                                   f"{c:.1f}" if isinstance(c, float) else str(c) for c in row) + " |")
    sys.stdout.flush()


# --- plans ----------------------------------------------------------------------------------------

PG_NODE = re.compile(r"((?:Parallel )?(?:Seq Scan|Index Only Scan|Index Scan(?: Backward)?|Bitmap Index Scan|"
                     r"Bitmap Heap Scan|Incremental Sort|Sort|HashAggregate|GroupAggregate))"
                     r"(?: using (\w+)| on (\w+))?")


async def explain(database: Database, query: sa.Executable, plans: list[str], label: str) -> str:
    """The plan (PostgreSQL: EXPLAIN ANALYZE) in full to `plans`; a one-line summary back."""
    async with database.read() as conn:
        sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        pg = conn.dialect.name == "postgresql"
        prefix = "EXPLAIN (ANALYZE, BUFFERS) " if pg else "EXPLAIN QUERY PLAN "
        rows = (await conn.exec_driver_sql(prefix + sql)).all()
    lines = [str(r[0]) if pg else str(r[-1]) for r in rows]
    plans.append(f"-- {label}\n{sql}\n" + "\n".join(lines) + "\n")
    if not pg:
        return "; ".join(lines)
    nodes = []
    for line in lines:
        m = PG_NODE.search(line)
        if m and ("->" in line or line == lines[0]):
            nodes.append(m.group(1) + (f" {m.group(2) or m.group(3)}" if m.group(2) or m.group(3) else ""))
    return " > ".join(dict.fromkeys(nodes))


# --- keys and limits ------------------------------------------------------------------------------

def key_sample(stored: int, n: int = SAMPLES) -> list[int]:
    step = max(1, stored // n)
    return [(i * step * 7919) % stored for i in range(n)]  # spread over the whole range, not in order


async def measure_keys(database: Database, stored: int, plans: list[str]) -> list[list[Any]]:
    hasher = KeyHasher(SECRET)
    store = SqlKeyStore(database)
    picks = key_sample(stored)
    bearer = [f"Bearer {token(i)}".encode() for i in picks]
    unknown = [f"Bearer {token(10**9 + i)}".encode() for i in range(SAMPLES)]
    miss = KeyAuthenticator(MASTER, store, hasher, ttl=0.0)  # every call reads the store
    hit = KeyAuthenticator(MASTER, store, hasher, ttl=3600.0)
    for b in bearer:
        await hit.resolve(b)
    hashes = [hasher.hash(token(i)) for i in picks]
    rows = [
        ["store.key_by_hash (1 query)", await sample(lambda i: store.key_by_hash(hashes[i]))],
        ["authn.resolve, cache miss (key + user + team)", await sample(lambda i: miss.resolve(bearer[i]))],
        ["authn.resolve, unknown key", await sample(lambda i: _refused(miss, unknown[i]))],
        ["authn.resolve, cache hit", await sample(lambda i: hit.resolve(bearer[i]))],
    ]
    plan = await explain(database, sa.select(*KEY_COLUMNS).where(api_keys.c.key_hash == hashes[0]), plans,
                         f"key_by_hash, {stored:,} keys")
    await store.close()
    return [[name, f"{stored:,}", s["p50"], s["p99"], plan] for name, s in rows]


async def _refused(authn: KeyAuthenticator, bearer: bytes) -> None:
    try:
        await authn.resolve(bearer)
    except Exception:
        return
    raise AssertionError("an unknown key was accepted")


async def measure_limits(active: int) -> list[list[Any]]:
    """The in-process limit checks (tenancy/limits.py, budgets.py) for a key, its user and its
    team, with `active` keys each admitted once in the current window (every stored key in use)."""
    limiter, budgets = MemoryLimiter(), MemoryBudgets()
    def subjects(i: int) -> list[tuple[str, str, int, int]]:  # as Metering._check builds them: levels with rpm/tpm
        return [("key", key_id(i), 600, 200_000), ("team", team_id(i % USERS % 50), 10_000, 0)]

    for i in range(active):
        limiter.acquire_now(subjects(i), 100)
    picks = key_sample(active)
    spent_budget = [("user", user_id(i % USERS), "month", 25_000_000) for i in picks]

    async def check(i: int) -> None:
        decision = limiter.acquire_now(subjects(picks[i % SAMPLES]), 100)
        held = budgets.reserve_now([spent_budget[i % SAMPLES]], 1000)
        limiter.settle_now(decision, 90)
        await budgets.settle(held, 900)  # type: ignore[arg-type]

    s = await sample(check, 20_000)
    return [["limiter + budget check and settle (in process)", f"{len(limiter):,} windows", s["p50"], s["p99"],
             f"max {s['max']:,.0f} us"]]


# --- spend ----------------------------------------------------------------------------------------

def spend_queries(now_ms: int) -> list[tuple[str, str, dict[str, Any]]]:
    today = now_ms // DAY_MS * DAY_MS
    d = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
    month = int(dt.datetime(d.year, d.month, 1, tzinfo=dt.UTC).timestamp() * 1000)
    heavy, typical, team = key_id(0), key_id(5000), team_id(1)
    return [
        ("Spend tab: by key, all time", "key", {}),
        ("Spend tab: by model, all time", "model", {}),
        ("Spend tab: by day, all time", "day", {}),
        ("Spend tab: by service, all time", "service", {}),
        ("Keys tab: by user, all time", "user", {}),
        ("Keys tab: by team, all time", "team", {}),
        ("Keys tab: by key since today (day budgets)", "key", {"since_ms": today}),
        ("Keys tab: by key since month start", "key", {"since_ms": month}),
        ("Spend tab: by model, last 7 days", "model", {"since_ms": today - 6 * DAY_MS}),
        ("key chart: by day, heaviest key, 30 days", "day", {"key_id": heavy, "since_ms": today - 29 * DAY_MS}),
        ("key chart: by day, typical key, 30 days", "day", {"key_id": typical, "since_ms": today - 29 * DAY_MS}),
        ("cli: --by model --team t1", "model", {"team_id": team}),
        ("cli: --by key --user u1 --since month", "key", {"user_id": user_id(1), "since_ms": month}),
        ("cli: --by day --model model-7", "day", {"model": "model-7"}),
        ("budget seed: spent(key heaviest, month)", "spent:key", {"id": heavy, "since_ms": month}),
        ("budget seed: spent(team t1, month)", "spent:team", {"id": team, "since_ms": month}),
    ]


def _query(group: str, kw: dict[str, Any]) -> sa.Select[Any]:
    if group.startswith("spent:"):
        scope = group.split(":")[1]
        return (sa.select(sa.func.coalesce(sa.func.sum(spend.c.cost), 0))
                .where(SCOPE_COLUMNS[scope] == kw["id"], *_window(kw.get("since_ms"), None)))
    where = _window(kw.get("since_ms"), None)
    where += [spend.c[col] == kw[col] for col in ("key_id", "user_id", "team_id", "model") if col in kw]
    return report_query(group, where, 1000)  # type: ignore[arg-type]


def _call(store: SqlSpendStore, group: str, kw: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    if group.startswith("spent:"):
        return lambda: store.spent(group.split(":")[1], kw["id"], since_ms=kw["since_ms"])  # type: ignore[arg-type]
    return lambda: store.report(group, limit=1000, **kw)  # type: ignore[arg-type]


async def measure_spend(database: Database, rows: int, now_ms: int, plans: list[str], runs: int,
                        queries: list[tuple[str, str, dict[str, Any]]] | None = None) -> list[list[Any]]:
    store = SqlSpendStore(database)
    out = []
    for label, group, kw in queries or spend_queries(now_ms):
        call = _call(store, group, kw)
        plan = await explain(database, _query(group, kw), plans, f"{label}, {rows:,} rows")  # also a warm-up
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            await call()
            times.append((time.perf_counter() - t) * 1000)
        out.append([label, f"{rows:,}", statistics.median(times), plan])
        say(f"  {label}: {statistics.median(times):.1f} ms")
    await store.close()
    return out


# --- sessions ------------------------------------------------------------------------------------

def session_list(user: str, before: int | None) -> sa.Select[Any]:
    """SqlChatStore.list_sessions's statement, for EXPLAIN."""
    s = chat_sessions
    q = sa.select(*SESSION_COLUMNS).where(s.c.user_id == user)
    if before is not None:
        q = q.where(s.c.updated_at < before)
    return q.order_by(s.c.updated_at.desc(), s.c.id.desc()).limit(50)


async def measure_sessions(database: Database, stored: int, plans: list[str]) -> list[list[Any]]:
    store = SqlChatStore(database)
    await store.start()
    base = 1_700_000_000_000
    middle = base + 2 * (stored // 2)  # the page half way down the heavy user's list
    spread = "bench-user-0"
    cases: list[tuple[str, Callable[[int], Awaitable[Any]], sa.Executable | None]] = [
        ("one user: first page (50)", lambda i: store.list_sessions(HEAVY_USER, 50), session_list(HEAVY_USER, None)),
        ("one user: a page half way down", lambda i: store.list_sessions(HEAVY_USER, 50, middle),
         session_list(HEAVY_USER, middle)),
        ("one user: the last page", lambda i: store.list_sessions(HEAVY_USER, 50, base + 100),
         session_list(HEAVY_USER, base + 100)),
        ("one user: count_sessions (on create)", lambda i: store.count_sessions(HEAVY_USER),
         sa.select(sa.func.count()).select_from(chat_sessions).where(chat_sessions.c.user_id == HEAVY_USER)),
        ("many users: one user's first page", lambda i: store.list_sessions(spread, 50), None),
        ("many users: count_sessions", lambda i: store.count_sessions(spread), None),
    ]
    out = []
    for label, fn, query in cases:
        s = await sample(fn, 200)
        plan = await explain(database, query, plans, f"{label}, {stored:,}") if query is not None else ""
        out.append([label, f"{stored:,} + {stored:,}", s["p50"] / 1000, s["p99"] / 1000, plan])
    await store.close()
    return out


# --- the run --------------------------------------------------------------------------------------

def stages(small: int, full: int) -> list[int]:
    return sorted({min(small, full), full})


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def run_pg(args: argparse.Namespace, plans: list[str]) -> None:
    await admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    await admin(f'CREATE DATABASE "{DB_NAME}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{DB_NAME}"
    database = Database(url)
    await database.acquire()  # the project's migrations, in their child process
    raw = await asyncpg.connect(url, timeout=10)
    try:
        await raw.execute("SET statement_timeout = '20min'")
        await pg_parts(args, database, raw, plans)
    finally:
        await raw.close()
        await database.release()
        if not args.keep:
            await admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


async def pg_parts(args: argparse.Namespace, database: Database, raw: asyncpg.Connection, plans: list[str]) -> None:
    if args.keys:
        rows: list[list[Any]] = []
        loaded = 0
        for n in stages(1000, args.keys):
            t = time.perf_counter()
            await pg_keys(raw, loaded, n, KeyHasher(SECRET))
            loaded = n
            say(f"PostgreSQL: {n:,} keys stored ({time.perf_counter() - t:.0f} s)")
            rows += await measure_keys(database, n, plans)
            for active in ([100_000] if n > 100_000 else []) + [n]:  # every stored key active at once
                rows += await measure_limits(active)
        table("Key lookup and limit checks, PostgreSQL (us)", ["path", "stored", "p50", "p99", "plan"], rows)
    if args.spend_rows:
        rows, loaded = [], 0
        now_ms = int(time.time() * 1000)
        first, step = now_ms, 90 * DAY_MS / args.spend_rows
        for n in stages(args.spend_rows // 10, args.spend_rows):
            t = time.perf_counter()
            built = await pg_spend(raw, loaded, n, first_ms=first, step_ms=step, active_keys=10_000, progress=say)
            loaded = n
            say(f"PostgreSQL: {n:,} spend rows ({time.perf_counter() - t:.0f} s, indexes {built:.0f} s)")
            size = await raw.fetchval("SELECT pg_size_pretty(pg_total_relation_size('spend'))")
            say(f"spend table with its indexes: {size}")
            rows += await measure_spend(database, n, now_ms, plans, args.runs)
        table("Spend report, PostgreSQL (ms, median of runs)", ["query", "rows", "ms", "plan"], rows)
        if args.compare_indexes:
            await compare_owner_indexes(database, raw, loaded, now_ms, plans, args.runs)
    if args.sessions:
        rows, loaded = [], 0
        for n in stages(1000, args.sessions):
            await pg_sessions(raw, HEAVY_USER, loaded, n, max(1, args.sessions // 100))
            loaded = n
            say(f"PostgreSQL: {n:,} + {n:,} sessions")
            rows += await measure_sessions(database, n, plans)
        table("Chat session list, PostgreSQL (ms)", ["call", "sessions (one user + spread)", "p50", "p99", "plan"],
              rows)


async def compare_owner_indexes(database: Database, raw: asyncpg.Connection, rows: int, now_ms: int,
                                plans: list[str], runs: int) -> None:
    """The queries that filter by an owner, with the owner indexes as before migration 0009 (plain)
    and as it leaves them (covering), on the same table."""
    owners = [q for q in spend_queries(now_ms) if {"key_id", "user_id", "team_id", "id"} & set(q[2])]
    out = []
    for shape, include in (("before 0009", ""), ("after 0009", f"INCLUDE ({', '.join(SPEND_COVERED)})")):
        t = time.perf_counter()
        await pg_owner_indexes(raw, include)
        say(f"owner indexes rebuilt {shape} ({time.perf_counter() - t:.0f} s)")
        size = await raw.fetchval("SELECT pg_size_pretty(pg_relation_size('ix_spend_key_id_at'))")
        measured = await measure_spend(database, rows, now_ms, plans, runs, owners)
        out += [[label, f"{shape} (ix_spend_key_id_at {size})", ms, plan] for label, _, ms, plan in measured]
    table("Owner-filtered spend queries, owner indexes before and after migration 0009 (ms)",
          ["query", "indexes", "ms", "plan"], out)


async def run_sqlite(args: argparse.Namespace, plans: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="cost_growth_") as tmp:
        path = str(Path(tmp) / "bench.db")
        database = Database(f"sqlite:///{path}")
        await database.acquire()
        try:
            if args.keys:
                rows: list[list[Any]] = []
                loaded = 0
                for n in stages(1000, args.keys):
                    await asyncio.to_thread(sqlite_keys, path, loaded, n, KeyHasher(SECRET))
                    loaded = n
                    say(f"SQLite: {n:,} keys stored")
                    rows += await measure_keys(database, n, plans)
                table("Key lookup, SQLite (us)", ["path", "stored", "p50", "p99", "plan"], rows)
            if args.sessions:
                rows, loaded = [], 0
                for n in stages(1000, args.sessions):
                    await asyncio.to_thread(sqlite_sessions, path, HEAVY_USER, loaded, n, max(1, args.sessions // 100))
                    loaded = n
                    rows += await measure_sessions(database, n, plans)
                table("Chat session list, SQLite (ms)", ["call", "sessions (one user + spread)", "p50", "p99",
                                                         "plan"], rows)
        finally:
            await database.release()


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", type=int, default=20_000, help="virtual keys stored at the end (0: skip)")
    p.add_argument("--spend-rows", type=int, default=200_000, help="spend rows at the end (0: skip)")
    p.add_argument("--sessions", type=int, default=5_000, help="one user's sessions, and as many spread (0: skip)")
    p.add_argument("--runs", type=int, default=3, help="timed runs of each spend query (the median is shown)")
    p.add_argument("--no-compare", dest="compare_indexes", action="store_false",
                   help="skip re-measuring the owner-filtered queries with the owner indexes as before 0009")
    p.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    p.add_argument("--keep", action="store_true", help=f"leave the database {DB_NAME} for inspection")
    p.add_argument("--plans", default="/tmp/cost_growth_plans.txt", help="where the full EXPLAIN output goes")
    args = p.parse_args()
    if args.keys > 2_000_000 or args.spend_rows > 20_000_000 or args.sessions > 1_000_000:
        p.error("bounded: at most 2M keys, 20M spend rows, 1M sessions")
    return args


async def main() -> None:
    args = parse()
    plans: list[str] = []
    say(f"cost growth: keys {args.keys:,}, spend rows {args.spend_rows:,}, sessions {args.sessions:,}")
    try:
        await run_pg(args, plans)
        if not args.no_sqlite:
            await run_sqlite(args, plans)
    finally:
        await asyncio.to_thread(Path(args.plans).write_text, "\n".join(plans))
        say(f"plans in {args.plans}")


if __name__ == "__main__":
    asyncio.run(main())
