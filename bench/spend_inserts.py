"""Issue 17, what binds after Redis: how many spend rows a second PostgreSQL takes from the spend
writer's sink (state/spend_sql.py: one INSERT .. ON CONFLICT DO NOTHING per batch, one transaction),
as a fleet's writers deliver them: W writers at once (one per replica or worker), each sending
batches of B records back to back, into a table that already holds R rows.

    uv run python bench/spend_inserts.py [--writers 1,4,10] [--batch 500] [--seconds 10] [--rows 1000000]

PostgreSQL on 127.0.0.1 only: the script creates the database clawdbot_bench_inserts (migrated by
the project) and drops it at the end. Prints a markdown table: rows/s, and ms per batch (p50/p99)."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import asyncpg
from cost_growth import ADMIN_URL, admin  # bench/: the same server, the same admin connection

from clawdbot.state.spend_base import SpendRecord
from clawdbot.state.spend_sql import SqlSpendStore
from clawdbot.state.sql import Database
from clawdbot.tenancy.spend import new_record_id

DB_NAME = "clawdbot_bench_inserts"
KEYS = 10_000


def batch(n: int, seq: int) -> list[SpendRecord]:
    now = int(time.time() * 1000)
    return [SpendRecord(new_record_id(), now, "gpt-4o-mini", 120, 40, 33, key_id=f"k_{(seq + i) % KEYS}",
                        user_id=f"u_{(seq + i) % 1000}", team_id=f"t_{(seq + i) % 50}", request_id=new_record_id(),
                        service="oa") for i in range(n)]


async def prefill(url: str, rows: int) -> None:
    """R rows already in the table, in one server-side statement (the indexes kept up to date)."""
    if not rows:
        return
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute("SET statement_timeout = '30min'")
        await conn.execute(
            "INSERT INTO spend (id, at, day, model, service, key_id, user_id, team_id, request_id, "
            "prompt_tokens, completion_tokens, cost) "
            "SELECT 'sp_pre_' || g, 1764892800000 + g, '2026-12-05', 'gpt-4o-mini', 'oa', 'k_' || (g % $1), "
            "'u_' || (g % 1000), 't_' || (g % 50), 'r_' || g, 120, 40, 33 FROM generate_series(1, $2) g",
            KEYS, rows)
        await conn.execute("ANALYZE spend")
    finally:
        await conn.close()


async def measure(store: SqlSpendStore, writers: int, size: int, seconds: float) -> tuple[float, list[float]]:
    times: list[float] = []
    sent = [0]
    end = time.monotonic() + seconds

    async def writer(w: int) -> None:
        seq = w * 1_000_000
        while time.monotonic() < end:
            recs = batch(size, seq)
            seq += size
            t0 = time.perf_counter()
            await store.write(recs)
            times.append((time.perf_counter() - t0) * 1000)
            sent[0] += size

    start = time.monotonic()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    return sent[0] / (time.monotonic() - start), times


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writers", default="1,4,10")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows in the table before measuring")
    a = ap.parse_args()
    writers = [int(w) for w in a.writers.split(",")]
    if not (all(1 <= w <= 64 for w in writers) and 1 <= a.batch <= 5000 and 0 < a.seconds <= 600
            and 0 <= a.rows <= 50_000_000):
        ap.error("out of the bounds this benchmark runs in")
    await admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    await admin(f'CREATE DATABASE "{DB_NAME}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{DB_NAME}"
    database = Database(url)
    await database.acquire()  # the project's migrations
    try:
        await prefill(url, a.rows)
        store = SqlSpendStore(database)
        await store.write(batch(a.batch, 10**9))  # warm: connections, statement cache
        print("| writers | batch | rows before | rows/s | ms per batch p50 | p99 |")
        print("|---:|---:|---:|---:|---:|---:|")
        for w in writers:
            rate, times = await measure(store, w, a.batch, a.seconds)
            times.sort()
            p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
            print(f"| {w} | {a.batch} | {a.rows:,} | {rate:,.0f} | {statistics.median(times):.1f} | {p99:.1f} |",
                  flush=True)
    finally:
        await database.release()
        await admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
