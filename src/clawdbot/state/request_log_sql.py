"""The request log on SQL (SQLite or PostgreSQL), table `request_log` (migration 0005).

A batch goes straight to the driver as the rows it was queued as (JSON already encoded), skipping
SQLAlchemy's per-row parameter processing (~25 us a row: a sixth of what a whole request costs the
gateway): on PostgreSQL one executemany (asyncpg pipelines it), on SQLite a few multi-row INSERTs
(one statement per ~1,200 rows: the worker thread lets go of the GIL once per statement, not twice
per row). Reads go through SQLAlchemy as usual. Pruning deletes `batch` rows per statement, each in
its own short transaction, chosen through the (at, seq) index or the primary key, so neither a reader nor the
writer waits long behind it and no statement touches an unbounded number of rows."""

from __future__ import annotations

import functools
import sqlite3
from typing import Any

import sqlalchemy as sa

from clawdbot.state.request_log_base import COLUMNS as ROW_COLUMNS
from clawdbot.state.request_log_base import MAX_PAGE, RequestPage, RequestQuery, RequestRecord, Row, from_row
from clawdbot.state.sql import DatabaseUser
from clawdbot.state.tables import request_log

t = request_log
BODY_COLUMNS = ("request_body", "response_body")
COLUMNS = tuple(c.name for c in t.columns if c.name not in BODY_COLUMNS)
LISTED = [t.c[name] for name in COLUMNS]
WRITTEN = ROW_COLUMNS


# the most variables one SQLite statement may hold (SQLITE_MAX_VARIABLE_NUMBER's default)
SQLITE_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
SQLITE_ROWS = SQLITE_VARIABLES // len(WRITTEN)


@functools.lru_cache(maxsize=32)
def insert_sql(paramstyle: str, rows: int = 1) -> str:
    """The driver's own INSERT of `rows` rows (SQLite: `?`, asyncpg: `$1`)."""
    n = len(WRITTEN)
    if paramstyle == "qmark":
        values = ", ".join(["(" + ", ".join(["?"] * n) + ")"] * rows)
    elif paramstyle == "numeric_dollar" and rows == 1:
        values = "(" + ", ".join(f"${i}" for i in range(1, n + 1)) + ")"
    elif paramstyle == "format" and rows == 1:
        values = "(" + ", ".join(["%s"] * n) + ")"
    else:
        raise ValueError(f"no INSERT of {rows} rows for paramstyle {paramstyle!r}")
    return f"INSERT INTO {t.name} ({', '.join(WRITTEN)}) VALUES {values}"


def _record(row: sa.RowMapping) -> RequestRecord:
    return from_row(tuple(row.get(c) for c in ROW_COLUMNS), row["seq"])


def where(q: RequestQuery) -> list[sa.ColumnElement[bool]]:
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


class SqlRequestLogStore(DatabaseUser):
    async def write(self, rows: list[Row]) -> None:
        await self.start()
        if not rows:
            return
        async with self.database.write() as conn:
            style = conn.dialect.paramstyle
            if style != "qmark":
                await conn.exec_driver_sql(insert_sql(style), rows)
                return
            for i in range(0, len(rows), SQLITE_ROWS):
                chunk = rows[i:i + SQLITE_ROWS]
                await conn.exec_driver_sql(insert_sql(style, len(chunk)), tuple(v for row in chunk for v in row))

    async def query(self, q: RequestQuery) -> RequestPage:
        await self.start()
        limit = min(max(q.limit, 1), MAX_PAGE)
        stmt = sa.select(*LISTED).where(*where(q)).order_by(t.c.at.desc(), t.c.seq.desc()).limit(limit + 1)
        async with self.database.read() as conn:
            rows = list((await conn.execute(stmt)).mappings())
        records = [_record(r) for r in rows[:limit]]
        last = records[-1] if len(rows) > limit else None
        return RequestPage(records=records, next_cursor=(last.at, last.seq or 0) if last is not None else None)

    async def get(self, id: str) -> RequestRecord | None:
        await self.start()
        stmt = sa.select(t).where(t.c.id == id).order_by(t.c.at.desc(), t.c.seq.desc()).limit(1)
        async with self.database.read() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        return None if row is None else _record(row)

    async def prune(self, older_than: int, max_rows: int, batch: int) -> int:
        await self.start()
        batch = max(batch, 1)
        gone = 0
        while True:  # retention: the oldest first, `batch` at a time
            doomed = sa.select(t.c.seq).where(t.c.at < older_than).order_by(t.c.at).limit(batch)
            n = await self._delete(doomed)
            gone += n
            if n < batch:
                break
        # The row budget: `seq` only grows (new rows get more than the highest there is), so the rows
        # above max(seq) - max_rows are at most max_rows, the newest; the rest go, `batch` at a time.
        # One index probe, where counting (or OFFSET max_rows) would read the whole budget each pass.
        # Gaps in seq (PostgreSQL's sequence skips what a failed batch took) only keep fewer.
        async with self.database.read() as conn:
            top = (await conn.execute(sa.select(sa.func.max(t.c.seq)))).scalar()
        edge = top - max(max_rows, 0) if top is not None and top > max_rows else None
        while edge is not None:
            n = await self._delete(sa.select(t.c.seq).where(t.c.seq <= edge).order_by(t.c.seq).limit(batch))
            gone += n
            if n < batch:
                break
        return gone

    async def _delete(self, doomed: sa.Select[Any]) -> int:
        # DELETE has no LIMIT on PostgreSQL (nor on a default SQLite build): the rows are chosen by
        # a subquery on an index and deleted by primary key
        async with self.database.write() as conn:
            result = await conn.execute(sa.delete(t).where(t.c.seq.in_(doomed.scalar_subquery())))
        return int(result.rowcount or 0)
