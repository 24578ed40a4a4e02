"""The request log on a SQLite file, written without SQLAlchemy: a sqlite3 connection of its own in a
thread of its own, so that a batch is one hand-off from the event loop (BEGIN IMMEDIATE, the ring's
state, the INSERTs, COMMIT; the ring's rules are in request_log_ring.py). Through SQLAlchemy over
aiosqlite the same batch took ~16 round trips to aiosqlite's thread and 1.1 ms of the event loop's
CPU, and loading the SQL layer alone slowed every request of the gateway by 2-3 us and grew it by
~50 MiB (docs/benchmarks.md). Reads (the admin API, `clawdbot replay`) go to a SqlRequestLogStore
on the same file, which state/lazy.py opens at the first read.

Before its first write the writer checks the file's schema with one query (state/revision.py) and,
when it is missing or older, migrates it in the child process state/sql.py uses, which also creates
the file private to its owner and in WAL mode. The connection waits for the write lock as long as
the engine's connections do (the same busy timeout) and commits with synchronous=NORMAL, as they
do."""

from __future__ import annotations

import asyncio
import sqlite3
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from clawdbot.state.ids import wall_ms
from clawdbot.state.request_log_base import (
    RangeCounts,
    RangeQuery,
    RequestLogStore,
    RequestPage,
    RequestQuery,
    RequestRecord,
)
from clawdbot.state.request_log_ring import Budget, RingSql, RingStore, SqliteRing
from clawdbot.state.revision import SCHEMA_HEAD, VERSION_TABLE, SchemaError, migrate_in_child

T = TypeVar("T")
BUSY_TIMEOUT_S = 15.0  # as state/sql.py's SQLITE_BUSY_TIMEOUT_MS: a write waits this long for the lock


def sqlite_file(url: str) -> str | None:
    """The file of a plain SQLite URL (`sqlite:///relative.db`, `sqlite:////abs/path.db`, with or
    without `+aiosqlite`); None for anything else: PostgreSQL, `:memory:`, URI filenames, options."""
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme.partition("+")[0].lower() != "sqlite" or "?" in rest or "%" in rest:
        return None
    if not rest or rest == ":memory:" or rest.startswith("file:"):
        return None
    return urllib.parse.unquote(rest)


class SqliteWriter:
    def __init__(self, path: str) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="request-log-writer")
        self._conn: sqlite3.Connection | None = None

    async def run(self, fn: Callable[[RingSql], T]) -> T:
        """`fn` in one write transaction, in the writer's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._transaction, fn)

    def schema(self) -> str | None:
        """The file's schema revision; None for a file that does not exist or has none yet."""
        try:
            conn = sqlite3.connect(f"file:{urllib.parse.quote(self.path)}?mode=ro", uri=True,
                                   timeout=BUSY_TIMEOUT_S)
        except sqlite3.OperationalError:  # no such file: the migration creates it, private
            return None
        try:
            row = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
        except sqlite3.OperationalError:  # no such table: an empty file
            return None
        finally:
            conn.close()
        return None if row is None else str(row[0])

    async def ready(self) -> None:
        """The file at SCHEMA_HEAD, migrated by the child process if it is not."""
        loop = asyncio.get_running_loop()
        if await loop.run_in_executor(self._pool, self.schema) == SCHEMA_HEAD:
            return
        await migrate_in_child(f"sqlite+aiosqlite:///{self.path}", self.path)
        revision = await loop.run_in_executor(self._pool, self.schema)
        if revision != SCHEMA_HEAD:
            raise SchemaError(f"the migration left {self.path} at {revision or 'no schema'}, not {SCHEMA_HEAD}")

    def _transaction(self, fn: Callable[[RingSql], T]) -> T:
        conn = self._conn
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.execute("PRAGMA synchronous = NORMAL")
            self._conn = conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            out = fn(SqliteRing(conn))
        except BaseException:
            if conn.in_transaction:  # SQLite rolls some errors back itself (a full disk)
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return out

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._close)
        self._pool.shutdown(wait=True)


class SqliteRequestLogStore(RingStore):
    """The RequestLogStore of a SQLite file: writes and retention here; reads through `reader` (a
    SqlRequestLogStore on the same file, which the caller makes lazy: state/lazy.py)."""

    def __init__(self, path: str, reader: RequestLogStore, *, max_rows: int = 200_000,
                 retention_hours: float = 168.0, clock: Callable[[], int] = wall_ms) -> None:
        self.budget = Budget.of(max_rows, retention_hours)
        self.clock = clock  # ms since the epoch
        self.reader = reader
        self._writer = SqliteWriter(path)
        self._ready = False
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        return None  # the file is opened at the first write, the SQL layer at the first read

    async def transaction(self, fn: Callable[[RingSql], T]) -> T:
        if not self._ready:
            async with self._lock:
                if not self._ready:
                    await self._writer.ready()
                    self._ready = True
        return await self._writer.run(fn)

    async def query(self, q: RequestQuery) -> RequestPage:
        return await self.reader.query(q)

    async def get(self, id: str) -> RequestRecord | None:
        return await self.reader.get(id)

    async def count_range(self, q: RangeQuery) -> RangeCounts:
        return await self.reader.count_range(q)

    async def close(self) -> None:
        await self._writer.close()
        await self.reader.close()
