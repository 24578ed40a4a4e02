"""The request log on SQL (SQLite or PostgreSQL): a ring of SEGMENTS tables (request_log_0 ..) and
their state (request_log_segments), migration 0006; the ring's rules are in request_log_ring.py.

Writing: one transaction per batch locks the segments' state (PostgreSQL: FOR UPDATE; SQLite: its
write lock), numbers the rows on from the active segment's last seq and inserts them there. The
active segment takes `max_rows // SEGMENTS` rows; a batch that would pass that empties the next
segment in one statement (SQLite: DELETE without WHERE, which frees the table's pages without
visiting its rows; PostgreSQL: TRUNCATE) and goes on there. So the ring holds at most `max_rows`
rows, and at least 7/8 of that once it has filled; keeping it bounded costs a statement per
`max_rows // SEGMENTS` rows, where deleting rows one by one (three indexes each) cost SQLite as much
as writing them (docs/benchmarks.md).

Retention (`prune`): a segment whose newest row is older than the cutoff is emptied, in its own
short transaction. The active segment moves on once it is older than retention / (SEGMENTS - 1) and
the next one holds nothing unexpired, so that under steady traffic no segment spans more than that
and a record stays between `retention` and about retention * 8/7 (plus the prune interval).

This store does everything through SQLAlchemy: PostgreSQL's log, an in-memory SQLite database's,
and the reads of a SQLite file's, whose writes go through a connection and thread of their own
without SQLAlchemy (request_log_sqlite.py). A batch goes to the driver as the rows it was queued
as (JSON already encoded), skipping SQLAlchemy's per-row parameter processing (~25 us a row): on
PostgreSQL in one executemany (asyncpg pipelines it) inside run_sync. Reads: one UNION ALL over the
ring, each table read newest first through its own index."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from clawdbot.state.ids import wall_ms
from clawdbot.state.request_log_base import COLUMNS as ROW_COLUMNS
from clawdbot.state.request_log_base import (
    MAX_PAGE,
    RangeCounts,
    RangeQuery,
    RequestPage,
    RequestQuery,
    RequestRecord,
    Row,
    from_row,
)
from clawdbot.state.request_log_ring import (
    RING,
    SAVE,
    TABLE,
    Budget,
    RingSql,
    RingStore,
    Segment,
    check,
    insert_sql,
    numbered,
    sqlite_inserts,
)
from clawdbot.state.sql import Database, DatabaseUser
from clawdbot.state.tables import request_log_tables

T = TypeVar("T")
BODY_COLUMNS = ("request_body", "response_body")
LISTED = tuple(c.name for c in request_log_tables[0].columns if c.name not in BODY_COLUMNS)


def where(q: RequestQuery, t: sa.Table) -> list[sa.ColumnElement[bool]]:
    out: list[sa.ColumnElement[bool]] = []
    if q.since is not None:
        out.append(t.c.at >= q.since)
    if q.until is not None:
        out.append(t.c.at < q.until)
    if q.key_id is not None:
        out.append(t.c.key_id == q.key_id)
    if q.model is not None:
        out.append(t.c.model == q.model)
    if q.status is not None:
        out.append(t.c.status == q.status)
    if q.status_class is not None:
        out.append(t.c.status.between(q.status_class * 100, q.status_class * 100 + 99))
    if q.errors:
        out.append(sa.or_(t.c.status >= 400, t.c.status <= 0))
    if q.min_latency_ms is not None:
        out.append(t.c.latency_ms >= q.min_latency_ms)
    if q.cursor is not None:
        at, seq = q.cursor
        out.append(sa.or_(t.c.at < at, sa.and_(t.c.at == at, t.c.seq < seq)))
    return out


def newest_first(parts: list[sa.Select[Any]], limit: int) -> sa.Select[Any]:
    """The newest `limit` rows of the ring: each table's newest (through its index), then of them all."""
    ring = sa.union_all(*(sa.select(p.order_by(p.selected_columns.at.desc(), p.selected_columns.seq.desc())
                                    .limit(limit).subquery()) for p in parts)).subquery()
    return sa.select(ring).order_by(ring.c.at.desc(), ring.c.seq.desc()).limit(limit)


def _bucket(value: sa.ColumnElement[Any], bounds: tuple[float, ...]) -> sa.ColumnElement[int]:
    return sa.case(*((value <= b, i) for i, b in enumerate(bounds)), else_=len(bounds))


def range_parts(q: RangeQuery, t: sa.Table) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """One segment's counts for RangeQuery, grouped in the database: (step, latency bucket,
    requests, errors, output tokens) and (step, ttft bucket, requests). The service and the tokens
    are in the record's JSON detail (JSON_EXTRACT on SQLite, ->> on PostgreSQL)."""
    cond = [t.c.at >= q.since, t.c.at < q.until]
    if q.model is not None:
        cond.append(t.c.model == q.model)
    if q.service is not None:
        cond.append(t.c.detail["service"].as_string() == q.service)
    step = ((t.c.at - q.since) // q.step_ms).label("step")
    lat = _bucket(t.c.latency_ms, q.latency_bounds_ms).label("b")
    error = sa.case((sa.or_(t.c.status <= 0, t.c.status >= 500), 1), else_=0)
    tokens = sa.func.coalesce(t.c.detail["completion_tokens"].as_integer(), 0)
    latency = (sa.select(step, lat, sa.func.count(), sa.func.sum(error), sa.func.sum(tokens))
               .where(*cond).group_by(step, lat))
    ttft_value = t.c.detail["ttft_ms"].as_float()
    ttft_b = _bucket(ttft_value, q.ttft_bounds_ms).label("b")
    ttft = sa.select(step, ttft_b, sa.func.count()).where(*cond, ttft_value.is_not(None)).group_by(step, ttft_b)
    return latency, ttft


def _merge(rows: Any, width: int) -> list[Any]:
    """Rows of the ring's segments summed by (step, bucket)."""
    out: dict[tuple[int, int], list[int]] = {}
    for row in rows:
        acc = out.setdefault((int(row[0]), int(row[1])), [0] * width)
        for i in range(width):
            acc[i] += int(row[2 + i] or 0)
    return sorted((s, b, *acc) for (s, b), acc in out.items())


def _record(row: sa.RowMapping) -> RequestRecord:
    return from_row(tuple(row.get(c) for c in ROW_COLUMNS), row["seq"])


class AlchemyRing:
    """On SQLAlchemy's synchronous connection (run_sync), inside its write transaction."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"

    def ring(self) -> list[Segment]:
        sql = RING + " FOR UPDATE" if self.postgres else RING
        return check([Segment(*row) for row in self.conn.execute(sa.text(sql))])

    def newest(self, number: int) -> int | None:
        value: int | None = self.conn.execute(sa.text(f"SELECT max(at) FROM {TABLE.format(number)}")).scalar()
        return value

    def empty(self, number: int) -> None:
        name = TABLE.format(number)
        self.conn.exec_driver_sql(f"TRUNCATE {name}" if self.postgres else f"DELETE FROM {name}")

    def save(self, seg: Segment) -> None:
        self.conn.execute(sa.text(SAVE), seg.params())

    def insert(self, seg: Segment, rows: Sequence[Row]) -> None:
        style = self.conn.dialect.paramstyle
        if style != "qmark":  # asyncpg: one executemany, pipelined
            self.conn.exec_driver_sql(insert_sql(seg.number, 1, style), list(numbered(seg, rows)))
            return
        for sql, params in sqlite_inserts(seg, rows):
            self.conn.exec_driver_sql(sql, params)


class SqlRequestLogStore(DatabaseUser, RingStore):
    def __init__(self, database: Database, *, max_rows: int = 200_000, retention_hours: float = 168.0,
                 clock: Callable[[], int] = wall_ms) -> None:
        super().__init__(database)
        self.budget = Budget.of(max_rows, retention_hours)
        self.clock = clock  # ms since the epoch

    async def transaction(self, fn: Callable[[RingSql], T]) -> T:
        await self.start()
        async with self.database.write() as conn:
            return await conn.run_sync(lambda sync: fn(AlchemyRing(sync)))

    async def query(self, q: RequestQuery) -> RequestPage:
        await self.start()
        limit = min(max(q.limit, 1), MAX_PAGE)
        parts = [sa.select(*(t.c[name] for name in LISTED)).where(*where(q, t)) for t in request_log_tables]
        async with self.database.read() as conn:
            rows = list((await conn.execute(newest_first(parts, limit + 1))).mappings())
        records = [_record(r) for r in rows[:limit]]
        last = records[-1] if len(rows) > limit else None
        return RequestPage(records=records, next_cursor=(last.at, last.seq or 0) if last is not None else None)

    async def count_range(self, q: RangeQuery) -> RangeCounts:
        await self.start()
        parts = [range_parts(q, t) for t in request_log_tables]
        async with self.database.read() as conn:
            latency = (await conn.execute(sa.union_all(*(p[0] for p in parts)))).all()
            ttft = (await conn.execute(sa.union_all(*(p[1] for p in parts)))).all()
        return RangeCounts(latency=_merge(latency, 3), ttft=_merge(ttft, 1))

    async def get(self, id: str) -> RequestRecord | None:
        await self.start()
        parts = [sa.select(t).where(t.c.id == id) for t in request_log_tables]
        async with self.database.read() as conn:
            row = (await conn.execute(newest_first(parts, 1))).mappings().first()
        return None if row is None else _record(row)
