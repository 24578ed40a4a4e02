"""The request log's stores: SQL on a real SQLite file and a real PostgreSQL database (fresh per
test) and the in-process one, held to one contract: records come back as written, newest first,
filtered, paged by cursor without gaps or repeats; retention and the row budget actually delete,
oldest first, in batches; bodies only from `get`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import alembic.command
import msgspec
import pytest
import sqlalchemy as sa

from clawdbot.state.ids import wall_ms
from clawdbot.state.request_log_base import RangeQuery, RequestLogStore, RequestQuery, RequestRecord, Row, to_row
from clawdbot.state.request_log_memory import MemoryRequestLogStore
from clawdbot.state.request_log_sql import SqlRequestLogStore
from clawdbot.state.request_log_sqlite import SqliteRequestLogStore
from clawdbot.state.sql import Database, alembic_config, create_engine, upgrade
from tests.state import test_chat_store as chat_tests
from tests.state.stores import backends, run_children_at_once, run_with_store

postgres = chat_tests.postgres
url = chat_tests.url

NOW = 1_780_000_000_000
HOUR = 3_600_000
Run = Callable[[Callable[[RequestLogStore], Awaitable[Any]]], Any]


def rec(id: str, at: int = NOW, **kw: Any) -> RequestRecord:
    fields: dict[str, Any] = {"method": "POST", "path": "/v1/chat/completions", "status": 200, "latency_ms": 12.5,
                              "model": "chat", "service": "oa", "upstream_model": "mock-a", "key_id": "k_a",
                              "principal": "k_a", "prompt_tokens": 5, "completion_tokens": 7, "cost_micros": 42,
                              "attempts": [{"service": "oa", "model": "mock-a", "ok": True, "status": 200, "ms": 3.5}],
                              "plugins": ["pii: masked 1 item"]}
    fields.update(kw)
    return RequestRecord(id=id, at=at, **fields)


def rows(*records: RequestRecord) -> list[Row]:
    return [to_row(r) for r in records]


def bare(r: RequestRecord) -> RequestRecord:
    return msgspec.structs.replace(r, seq=None, request_body=None, response_body=None)


def sql_store(max_rows: int = 1000, retention_hours: float = 168, clock: Callable[[], int] = wall_ms,
              ) -> Callable[[Database], RequestLogStore]:
    """What the gateway runs on `db`: on a SQLite file, the SQLite writer with SQLAlchemy reading;
    on PostgreSQL, SQLAlchemy (state/lazy.py lazy_request_log_store)."""
    def make(db: Database) -> RequestLogStore:
        store = SqlRequestLogStore(db, max_rows=max_rows, retention_hours=retention_hours, clock=clock)
        if db.url.get_backend_name() != "sqlite":
            return store
        assert db.url.database is not None
        return SqliteRequestLogStore(db.url.database, store, max_rows=max_rows, retention_hours=retention_hours,
                                     clock=clock)
    return make


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Run]:
    yield from backends(request, tmp_path, lambda: MemoryRequestLogStore(1000), sql_store())


def test_round_trip_with_and_without_bodies(run: Run) -> None:
    async def body(store: RequestLogStore) -> None:
        full = rec("r1", request_body='{"model": "chat"}', response_body='{"choices": []}', body_truncated=True,
                   stream=True, ttft_ms=3.25, error="boom", error_code="upstream_error", cached=True,
                   tokens_estimated=True, user_id="u_1", team_id="t_1")
        await store.write(rows(full, rec("r2", at=NOW + 1, cost_micros=None, attempts=None, plugins=None)))
        got = await store.get("r1")
        assert got is not None and got.seq is not None
        assert got == msgspec.structs.replace(full, seq=got.seq)
        page = await store.query(RequestQuery())
        assert [r.id for r in page.records] == ["r2", "r1"] and page.next_cursor is None
        assert page.records[1].request_body is None and page.records[1].response_body is None  # lists: no bodies
        assert bare(page.records[1]) == bare(full)
        assert page.records[0].cost_micros is None and page.records[0].attempts is None
        assert await store.get("nope") is None

    run(body)


def test_the_same_request_id_twice_get_returns_the_newest(run: Run) -> None:
    async def body(store: RequestLogStore) -> None:
        await store.write(rows(rec("dup", status=500), rec("dup", at=NOW + 5, status=200)))
        got = await store.get("dup")
        assert got is not None and got.status == 200
        assert len((await store.query(RequestQuery())).records) == 2

    run(body)


def test_filters(run: Run) -> None:
    async def body(store: RequestLogStore) -> None:
        await store.write(rows(
            rec("a", NOW, status=200, latency_ms=10.0),
            rec("b", NOW + 1, status=429, key_id="k_b", latency_ms=500.0),
            rec("c", NOW + 2, status=502, model="other", latency_ms=2000.0),
            rec("d", NOW + 3, status=499, latency_ms=50.0),
            rec("e", NOW + 4, status=0, latency_ms=1.0),
        ))

        async def ids(**kw: Any) -> list[str]:
            return [r.id for r in (await store.query(RequestQuery(**kw))).records]

        assert await ids() == ["e", "d", "c", "b", "a"]
        assert await ids(since=NOW + 1, until=NOW + 3) == ["c", "b"]
        assert await ids(key_id="k_b") == ["b"]
        assert await ids(model="other") == ["c"]
        assert await ids(status=429) == ["b"]
        assert await ids(status_class=4) == ["d", "b"]
        assert await ids(status_class=5) == ["c"]
        assert await ids(errors=True) == ["e", "d", "c", "b"]
        assert await ids(min_latency_ms=500.0) == ["c", "b"]
        assert await ids(min_latency_ms=100.0, status_class=5) == ["c"]

    run(body)


def test_counts_over_a_range_by_step_bucket_model_and_service(run: Run) -> None:
    """The control panel's longer ranges: counted by the store (SQL: grouped in the database, the
    service and tokens read from the JSON detail), the same on every backend."""
    minute = 60_000
    q = RangeQuery(since=NOW, step_ms=minute, steps=3, latency_bounds_ms=(10.0, 100.0, 1000.0),
                   ttft_bounds_ms=(5.0, 50.0))

    async def body(store: RequestLogStore) -> None:
        await store.write(rows(
            rec("before", NOW - 1),  # outside: before the range
            rec("a", NOW, latency_ms=10.0, completion_tokens=7, stream=True, ttft_ms=4.0),
            rec("b", NOW + 10, latency_ms=50.0, completion_tokens=None, status=502, service="ol", model="other"),
            rec("c", NOW + minute, latency_ms=5000.0, completion_tokens=3, status=0, stream=True, ttft_ms=60.0),
            rec("d", NOW + 2 * minute + 1, latency_ms=100.0, completion_tokens=1, status=429),
            rec("after", NOW + 3 * minute),  # outside: the range ends before it
        ))
        got = await store.count_range(q)
        # (step, latency bucket, requests, errors, output tokens)
        assert got.latency == [(0, 0, 1, 0, 7), (0, 1, 1, 1, 0), (1, 3, 1, 1, 3), (2, 1, 1, 0, 1)]
        assert got.ttft == [(0, 0, 1), (1, 2, 1)]
        by_model = await store.count_range(msgspec.structs.replace(q, model="other"))
        assert by_model.latency == [(0, 1, 1, 1, 0)] and by_model.ttft == []
        by_service = await store.count_range(msgspec.structs.replace(q, service="oa"))
        assert [row[0] for row in by_service.latency] == [0, 1, 2] and sum(r[2] for r in by_service.latency) == 3
        none = await store.count_range(msgspec.structs.replace(q, service="nowhere"))
        assert none.latency == [] and none.ttft == []

    run(body)


def test_cursor_pages_through_ties_without_gaps_or_repeats(run: Run) -> None:
    async def body(store: RequestLogStore) -> None:
        # 25 records, many sharing a millisecond: the cursor must still split between them
        await store.write(rows(*(rec(f"r{i:02d}", NOW + i // 4) for i in range(25))))
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await store.query(RequestQuery(limit=7, cursor=cursor))
            seen += [r.id for r in page.records]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert pages == 4 and len(seen) == 25 and len(set(seen)) == 25
        ats = [int(s[1:]) // 4 for s in seen]
        assert ats == sorted(ats, reverse=True)
        # filters hold across pages
        first = await store.query(RequestQuery(limit=2, since=NOW + 5))
        second = await store.query(RequestQuery(limit=2, since=NOW + 5, cursor=first.next_cursor))
        assert [r.id for r in first.records + second.records] == ["r24", "r23", "r22", "r21"]

    run(body)


class Clock:
    """The SQL store's wall clock, moved by the test (ms since the epoch)."""

    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def run_ring(request: pytest.FixtureRequest, tmp_path: Path, max_rows: int, clock: Clock) -> Iterator[Run]:
    """The three stores with a row budget and a one-hour retention (the SQL ring: max_rows // 8 a segment)."""
    yield from backends(request, tmp_path, lambda: MemoryRequestLogStore(max_rows),
                        sql_store(max_rows, retention_hours=1, clock=clock))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
def small(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Run]:
    yield from run_ring(request, tmp_path, 16, clock)


@pytest.fixture(params=["sqlite", "postgresql"])
def ring(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Run]:
    yield from run_ring(request, tmp_path, 16, clock)


async def everything(store: RequestLogStore) -> list[str]:
    return [r.id for r in (await store.query(RequestQuery(limit=1000))).records]


def test_retention_deletes_the_expired(small: Run, clock: Clock) -> None:
    async def body(store: RequestLogStore) -> None:
        assert await store.write(rows(*(rec(f"old{i}", NOW - 2 * HOUR + i) for i in range(5)))) == 0
        clock.now += 10 * 60_000  # more than retention / 7: the SQL ring writes on in the next segment
        assert await store.write(rows(*(rec(f"new{i}", NOW + i) for i in range(4)))) == 0
        assert await store.prune(older_than=clock.now - HOUR) == 5
        assert await everything(store) == ["new3", "new2", "new1", "new0"]
        assert await store.prune(older_than=clock.now - HOUR) == 0

    small(body)


def test_the_row_budget_keeps_the_newest(small: Run) -> None:
    """However the batches fall, the log keeps the newest records, never more than max_rows (16) and,
    once it has that many, at least 7/8 of them (SQL: a segment of 2 goes at a time); `write`
    counts what it pushed out."""
    async def body(store: RequestLogStore) -> None:
        written = pushed_out = 0
        for size in (1, 3, 5, 1, 10, 2, 21, 1, 1):
            pushed_out += await store.write(rows(*(rec(f"r{i:03d}", NOW + i)
                                                   for i in range(written, written + size))))
            written += size
            kept = await everything(store)
            assert min(written, 14) <= len(kept) <= 16, (written, kept)
            assert kept == [f"r{i:03d}" for i in range(written - 1, written - 1 - len(kept), -1)]
            assert pushed_out == written - len(kept)

    small(body)


def test_a_batch_larger_than_the_budget(small: Run) -> None:
    async def body(store: RequestLogStore) -> None:
        assert await store.write(rows(*(rec(f"r{i:03d}", NOW + i) for i in range(50)))) >= 34
        kept = await everything(store)
        assert 14 <= len(kept) <= 16 and kept == [f"r{i:03d}" for i in range(49, 49 - len(kept), -1)]

    small(body)


def test_retention_waits_for_a_whole_segment(ring: Run, clock: Clock) -> None:
    """SQL: records share a segment with newer ones until it rotates, and go with it."""
    async def body(store: RequestLogStore) -> None:
        await store.write(rows(rec("old", NOW - 2 * HOUR), rec("new", NOW)))
        assert await store.prune(older_than=NOW - HOUR) == 0
        assert await everything(store) == ["new", "old"]
        assert await store.prune(older_than=NOW + 1) == 2
        assert await everything(store) == []
        # the emptied active segment goes on from where it was: a seq is never given twice
        await store.write(rows(rec("later", NOW + 5)))
        got = await store.get("later")
        assert got is not None and got.seq == 3

    ring(body)


def test_time_moves_the_ring_on_only_past_expired_records(ring: Run, clock: Clock) -> None:
    """Once the active segment is older than retention / 7, writing moves on to the next segment
    if that holds nothing unexpired; otherwise it writes on where it is and loses nothing."""
    async def body(store: RequestLogStore) -> None:
        step = 9 * 60_000  # more than an hour / 7
        for n in range(8):  # one record per segment, each written a step later
            assert await store.write(rows(rec(f"s{n}", clock.now))) == 0
            clock.now += step
        # 8 steps = 72 minutes: segment 0's record has expired, so the ring moves on into it
        assert await store.write(rows(rec("s8", clock.now))) == 1
        assert await everything(store) == [f"s{n}" for n in range(8, 0, -1)]
        # right after, segment 1's record is still within the hour: no move, nothing lost
        clock.now += step // 2
        assert await store.write(rows(rec("s9", clock.now))) == 0
        assert await everything(store) == ["s9"] + [f"s{n}" for n in range(8, 0, -1)]

    ring(body)


def test_pages_run_across_segments(ring: Run) -> None:
    async def body(store: RequestLogStore) -> None:
        # 15 records in 8 segments of 2, many sharing a millisecond, written in uneven batches
        records = [rec(f"r{i:02d}", NOW + i // 3) for i in range(15)]
        for lo, hi in ((0, 4), (4, 5), (5, 12), (12, 15)):
            assert await store.write(rows(*records[lo:hi])) == 0
        seen: list[str] = []
        cursor = None
        while True:
            page = await store.query(RequestQuery(limit=4, cursor=cursor, since=NOW + 1))
            seen += [r.id for r in page.records]
            if (cursor := page.next_cursor) is None:
                break
        assert seen == [f"r{i:02d}" for i in range(14, 2, -1)]
        got = await store.get("r07")
        assert got is not None and got.at == NOW + 2

    ring(body)


def test_rows_logged_before_the_ring_move_into_it(url: str) -> None:
    """Migration 0006 on a database with records in 0005's single table: they are read back, and
    the next record written gets a seq after theirs."""
    async def migrate() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(lambda sync: alembic.command.upgrade(alembic_config(connection=sync), "0005"))
                for i in range(3):
                    await conn.execute(sa.text(
                        "INSERT INTO request_log (id, at, model, status, latency_ms, detail) "
                        "VALUES (:id, :at, 'chat', 200, 1.5, :detail)"),
                        {"id": f"before{i}", "at": NOW + i, "detail": '{"method": "POST", "service": "oa"}'})
            await upgrade(engine)
        finally:
            await engine.dispose()

    async def body(store: RequestLogStore) -> None:
        assert await everything(store) == ["before2", "before1", "before0"]
        old = await store.get("before1")
        assert old is not None and old.service == "oa" and old.method == "POST"
        await store.write(rows(rec("after", NOW + 10)))
        seqs = [r.seq for r in (await store.query(RequestQuery())).records]
        assert seqs == [4, 3, 2, 1]

    asyncio.run(migrate())
    run_with_store(lambda: sql_store()(Database(url)), body)


WRITE_IN_CHILD = """
import asyncio, os, sys, time
from clawdbot.state.lazy import lazy_request_log_store
from clawdbot.state.request_log_base import RequestRecord, to_row

async def main():
    store = lazy_request_log_store(sys.argv[1], 64, 168)  # segments of 8; what the gateway builds
    await store.start()
    print("ready", flush=True)
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.005)
    pushed_out = 0
    for b in range(30):
        batch = [to_row(RequestRecord(id=f"{os.getpid()}-{b}-{i}", at=b * 10 + i, status=200, latency_ms=1.0))
                 for i in range(5)]
        pushed_out += await store.write(batch)
    await store.close()
    print(pushed_out, file=sys.stderr)

asyncio.run(main())
"""


def test_replicas_share_one_ring(url: str, tmp_path: Path) -> None:
    """Three processes write batches into one database at once (replicas on PostgreSQL; processes
    sharing a SQLite file): no batch fails on a seq another one took, the ring's counts match its
    tables, and it holds the budget."""
    run_children_at_once(WRITE_IN_CHILD, url, tmp_path)  # migrating the database at once, too

    async def check(store: RequestLogStore) -> None:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                counted = [(await conn.execute(sa.text(f"SELECT count(*), min(seq), max(seq) FROM request_log_{n}")))
                           .one() for n in range(8)]
                ring = list(await conn.execute(sa.text("SELECT segment, first_seq, rows FROM request_log_segments "
                                                       "ORDER BY segment")))
        finally:
            await engine.dispose()
        for (count, low, high), (_, first, n) in zip(counted, ring, strict=True):
            assert count == n and (count == 0 or (low == first and high == first + n - 1))
        kept = await everything(store)
        assert 56 <= len(kept) <= 64 and len(set(kept)) == len(kept)
        assert max(first + n for _, first, n in ring) == 3 * 30 * 5 + 1  # every seq given once, none skipped

    run_with_store(lambda: sql_store()(Database(url)), check)


def test_an_in_memory_sqlite_database_keeps_the_ring_through_sqlalchemy() -> None:
    """`sqlite:///:memory:` has no file for the SQLite writer: SQLAlchemy writes its ring."""
    async def body(store: RequestLogStore) -> None:
        for start in range(0, 40, 10):
            await store.write(rows(*(rec(f"r{i:02d}", NOW + i) for i in range(start, start + 10))))
        kept = await everything(store)
        assert 14 <= len(kept) <= 16 and kept == [f"r{i:02d}" for i in range(39, 39 - len(kept), -1)]
        got = await store.get(kept[-1])
        assert got is not None and got.seq == 40 - len(kept) + 1

    run_with_store(lambda: SqlRequestLogStore(Database("sqlite:///:memory:"), max_rows=16), body)
