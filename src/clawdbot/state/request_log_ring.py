"""The request log's ring of tables (state/request_log_sql.py has the design): the rules for writing
a batch and for emptying expired segments, written once, synchronously, against `RingSql`. Two
connections implement it: SQLite's own (`SqliteRing`, in the request log's writer thread: a whole
batch in one hand-off, state/request_log_sqlite.py) and SQLAlchemy's synchronous one (`AlchemyRing`
in state/request_log_sql.py: PostgreSQL, inside `AsyncConnection.run_sync`). Each call runs inside
one write transaction that its caller opened. No SQLAlchemy here: a gateway that only writes its
request log to SQLite never loads it."""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from clawdbot.state.request_log_base import COLUMNS, SEGMENTS, Row

T = TypeVar("T")
WRITTEN = ("seq", *COLUMNS)
TABLE = "request_log_{}"
RING = "SELECT segment, first_seq, rows, opened_at FROM request_log_segments ORDER BY segment"
SAVE = ("UPDATE request_log_segments SET first_seq = :first_seq, rows = :rows, opened_at = :opened_at "
        "WHERE segment = :segment")
# the most variables one SQLite statement may hold (SQLITE_MAX_VARIABLE_NUMBER's default)
SQLITE_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
# Rows per multi-row INSERT on SQLite: one statement is one hand-off of the GIL (executemany takes
# and drops it twice a row), and its shape must repeat so that SQLite's statement cache keeps it
# prepared (preparing a 100-row INSERT costs more than running it): a batch goes in statements of
# SQLITE_CHUNK rows, its remainder in powers of two, so there are never more than ten shapes.
SQLITE_CHUNK = 1 << min(256, SQLITE_VARIABLES // len(WRITTEN)).bit_length() - 1


@functools.lru_cache(maxsize=256)
def insert_sql(segment: int, rows: int = 1, paramstyle: str = "qmark", seq: bool = True) -> str:
    """The driver's own INSERT of `rows` rows into a segment (SQLite: `?`; asyncpg: `$1`, one row),
    with their seq, or (seq False, SQLite) numbered by SQLite on from the table's highest."""
    columns = WRITTEN if seq else COLUMNS
    n = len(columns)
    if paramstyle == "qmark":
        values = ", ".join(["(" + ", ".join(["?"] * n) + ")"] * rows)
    elif paramstyle == "numeric_dollar" and rows == 1:
        values = "(" + ", ".join(f"${i}" for i in range(1, n + 1)) + ")"
    else:
        raise ValueError(f"no INSERT of {rows} rows for paramstyle {paramstyle!r}")
    return f"INSERT INTO {TABLE.format(segment)} ({', '.join(columns)}) VALUES {values}"


def chunks(total: int) -> Iterator[tuple[int, int]]:
    """(start, rows) of each multi-row INSERT: SQLITE_CHUNK rows, then the rest in powers of two."""
    start = 0
    while total - start >= SQLITE_CHUNK:
        yield start, SQLITE_CHUNK
        start += SQLITE_CHUNK
    size = SQLITE_CHUNK >> 1
    while start < total:
        if total - start >= size:
            yield start, size
            start += size
        size >>= 1


@dataclass(slots=True)
class Segment:
    number: int
    first_seq: int
    rows: int
    opened_at: int  # ms since the epoch: when its first row was written, this time round

    @property
    def next_seq(self) -> int:
        return self.first_seq + self.rows

    def params(self) -> dict[str, int]:
        return {"segment": self.number, "first_seq": self.first_seq, "rows": self.rows, "opened_at": self.opened_at}


def active(ring: Sequence[Segment]) -> Segment:
    """The segment written to: the highest first_seq (each one opened takes the next seq there is)."""
    return max(ring, key=lambda s: s.first_seq)


def check(ring: list[Segment]) -> list[Segment]:
    if [s.number for s in ring] != list(range(SEGMENTS)):
        raise RuntimeError("request_log_segments does not hold one row per segment: the request log's tables "
                           "were changed outside clawdbot")
    return ring


class RingSql(Protocol):
    def ring(self) -> list[Segment]:
        """The segments' state, locked until the transaction ends."""
        ...

    def newest(self, number: int) -> int | None:
        """The newest `at` in a segment: one probe of its (at, seq) index."""
        ...

    def empty(self, number: int) -> None: ...

    def save(self, seg: Segment) -> None: ...

    def insert(self, seg: Segment, rows: Sequence[Row]) -> None:
        """`rows` into the segment, numbered from its next seq."""
        ...


@dataclass(frozen=True, slots=True)
class Budget:
    capacity: int  # rows a segment takes: max_rows // SEGMENTS
    span_ms: int  # how long a segment is written to before it may move on: retention / (SEGMENTS - 1)
    retention_ms: int

    @classmethod
    def of(cls, max_rows: int, retention_hours: float) -> Budget:
        retention_ms = int(retention_hours * 3_600_000)
        return cls(max(max_rows // SEGMENTS, 1), max(retention_ms // (SEGMENTS - 1), 1), retention_ms)


def write(db: RingSql, rows: Sequence[Row], now: int, budget: Budget) -> int:
    """Writes `rows` into the ring; returns the rows emptied to make room (or because they expired)."""
    ring = db.ring()
    seg = active(ring)
    gone = 0
    if seg.rows and now - seg.opened_at >= budget.span_ms:  # old enough to move on, if the next has expired
        following = ring[(seg.number + 1) % SEGMENTS]
        last = db.newest(following.number) if following.rows else None
        if last is None or last < now - budget.retention_ms:
            gone += following.rows
            seg = _open(db, following, seg.next_seq, now)
    done = 0
    while done < len(rows):
        if seg.rows >= budget.capacity:  # the row budget: the oldest segment goes
            db.save(seg)
            following = ring[(seg.number + 1) % SEGMENTS]
            gone += following.rows
            seg = _open(db, following, seg.next_seq, now)
        take = min(budget.capacity - seg.rows, len(rows) - done)
        db.insert(seg, rows[done:done + take])
        if not seg.rows:
            seg.opened_at = now
        seg.rows += take
        done += take
    db.save(seg)
    return gone


def _open(db: RingSql, seg: Segment, first_seq: int, now: int) -> Segment:
    if seg.rows:
        db.empty(seg.number)
    seg.first_seq, seg.rows, seg.opened_at = first_seq, 0, now
    db.save(seg)
    return seg


def expired(db: RingSql, older_than: int) -> list[int]:
    """The segments whose newest row is older than `older_than`."""
    return [s.number for s in db.ring() if s.rows and (db.newest(s.number) or 0) < older_than]


def empty_expired(db: RingSql, number: int, older_than: int) -> int:
    """Empties the segment if it has (still) expired; returns the rows gone."""
    ring = db.ring()
    seg = ring[number]
    if not seg.rows or (db.newest(number) or 0) >= older_than:
        return 0
    db.empty(number)
    gone = seg.rows
    if seg is active(ring):  # its seqs are not given again
        seg.first_seq += seg.rows
    seg.rows = 0
    db.save(seg)
    return gone


def numbered(seg: Segment, rows: Sequence[Row]) -> Any:
    return ((seq, *row) for seq, row in zip(itertools.count(seg.next_seq), rows, strict=False))


def sqlite_inserts(seg: Segment, rows: Sequence[Row]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """SQLite's INSERTs of `rows` (see `chunks`), parameters flattened. A segment's rows are numbered
    without gaps, so only an empty segment's first row needs its seq: SQLite gives each row after it
    the table's highest rowid + 1, and no row goes through Python on the way."""
    if not seg.rows:
        yield insert_sql(seg.number, 1), (seg.next_seq, *rows[0])
        rows = rows[1:]
    for start, n in chunks(len(rows)):
        yield insert_sql(seg.number, n, seq=False), tuple(itertools.chain.from_iterable(rows[start:start + n]))


class SqliteRing:
    """On a sqlite3 connection, in a transaction begun with BEGIN IMMEDIATE (the write lock)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def ring(self) -> list[Segment]:
        return check([Segment(*row) for row in self.conn.execute(RING)])

    def newest(self, number: int) -> int | None:
        value: int | None = self.conn.execute(f"SELECT max(at) FROM {TABLE.format(number)}").fetchone()[0]
        return value

    def empty(self, number: int) -> None:
        # no WHERE: SQLite frees the table's pages without visiting its rows (the truncate optimisation)
        self.conn.execute(f"DELETE FROM {TABLE.format(number)}")

    def save(self, seg: Segment) -> None:
        self.conn.execute(SAVE, seg.params())

    def insert(self, seg: Segment, rows: Sequence[Row]) -> None:
        for sql, params in sqlite_inserts(seg, rows):
            self.conn.execute(sql, params)


class RingStore:
    """`write` and `prune` of a store on the ring, over its own way of running a function in one
    write transaction (`transaction`): SQLite's writer thread, or SQLAlchemy's run_sync."""

    budget: Budget
    clock: Callable[[], int]  # ms since the epoch

    async def transaction(self, fn: Callable[[RingSql], T]) -> T:
        raise NotImplementedError

    async def write(self, rows: list[Row]) -> int:
        if not rows:
            return 0
        now, budget = self.clock(), self.budget
        return await self.transaction(lambda db: write(db, rows, now, budget))

    async def prune(self, older_than: int) -> int:
        """Empties each segment whose newest row is older than `older_than`, each in its own short
        transaction (checked again there); returns the rows gone."""
        gone = 0
        for number in await self.transaction(lambda db: expired(db, older_than)):
            gone += await self.transaction(lambda db: empty_expired(db, number, older_than))  # noqa: B023 (run at once)
        return gone
