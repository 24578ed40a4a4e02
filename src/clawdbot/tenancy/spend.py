"""Spend records, in the journal at once and in the database in batches off the request path.

`SpendWriter.record()` appends the record to the spend journal (tenancy/journal.py: one `write()`,
no await, no fsync) and keeps it in a bounded in-memory queue. A background task hands batches to
the sink every `flush_interval_s`, or as soon as `batch_size` records wait, then tells the journal
what was delivered (its segments are deleted) and fsyncs what is new. A process killed at any point
loses no record: a restart (or any other process sharing the data directory) delivers what its
journal still holds. When the sink fails or the queue fills, the writer falls behind: the queue is
dropped and records are read back from the journal, oldest first, until it has caught up. Delivery
is at least once; the sink makes it exactly once by ignoring record ids it already holds (the SQL
sink: a primary key and ON CONFLICT DO NOTHING). Nothing is dropped silently: a record the journal
cannot take (full, or the disk is) is held in memory, and when those fill up `record()` raises
`SpendOverflow`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

import msgspec

from clawdbot.state.ids import unique_hex
from clawdbot.state.spend_base import SpendRecord
from clawdbot.tenancy.journal import Journal, JournalFull, Orphan, Pos, read_lines

log = logging.getLogger("clawdbot.spend")
ADOPT_EVERY_S = 30.0  # how often other (dead) processes' journals are looked for


def new_record_id() -> str:
    return "sp_" + unique_hex()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


Sink = Callable[[list[SpendRecord]], Awaitable[None]]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SpendRecord)


class SpendOverflow(Exception):
    """The journal cannot take records and the memory for them is full: the caller must not go on silently."""


class SpendWriter:
    def __init__(
        self,
        sink: Sink,
        journal: Journal,
        *,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.25,
        sink_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._journal = journal
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.interval = flush_interval_s
        self.sink_timeout = sink_timeout_s  # a hung database must not stall the writer: fall behind instead
        self._clock = clock
        self._queue: deque[tuple[SpendRecord, Pos]] = deque()  # journaled, not yet delivered, in order
        self._unjournaled: deque[SpendRecord] = deque()  # the journal refused them: only here
        self._done: Pos = journal.end  # everything before it is delivered
        self._cursor: Pos | None = None  # behind: where reading back from the journal goes on
        self._adopted_at = float("-inf")
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # counters for metrics and tests
        self.delivered = 0
        self.replayed = 0  # read back from the journal (this process's, or one it adopted)
        self.sink_failures = 0
        self.journal_refusals = 0
        self.overflows = 0

    @property
    def backlog(self) -> int:
        """Records only in memory: the journal could not take them."""
        return len(self._unjournaled)

    @property
    def behind(self) -> bool:
        return self._cursor is not None

    @property
    def pending(self) -> bool:
        """Anything not yet delivered?"""
        return bool(self._queue or self._unjournaled or self._cursor is not None)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="spend-writer")

    def record(self, rec: SpendRecord, force: bool = False) -> None:
        """`force`: past `max_queue` too. For a request already answered, whose admission checked
        there was room: its record must not be lost (the overshoot is bounded by the requests in
        flight)."""
        try:
            pos = self._journal.append(_encoder.encode(rec))
        except (JournalFull, OSError) as e:
            if len(self._unjournaled) >= self.max_queue and not force:
                self.overflows += 1
                raise SpendOverflow(f"spend journal refused a record and {self.max_queue} wait in memory") from e
            if not self.journal_refusals % 1000:
                log.error("%s; spend records are held in memory until the database takes them", e)
            self.journal_refusals += 1
            self._unjournaled.append(rec)
            self._wake.set()
            return
        if self._cursor is not None:
            return  # behind: read back from the journal in order
        if len(self._queue) >= self.max_queue:  # the sink is slow: the journal holds them meanwhile
            self._fall_behind()
            return
        self._queue.append((rec, pos))
        if len(self._queue) >= self.batch_size:
            self._wake.set()

    def _fall_behind(self) -> None:
        self._cursor = self._done
        self._queue.clear()

    async def close(self) -> None:
        """Graceful shutdown: stop the loop, then deliver what is still waiting. What the sink does
        not take stays in the journal for the next start."""
        if self._task is not None:
            # no cancel: a cancelled flush could leave a batch half recorded as delivered
            self._stopping = True
            self._wake.set()
            await self._task
            self._task = None
        await self.flush()
        await asyncio.to_thread(self._journal.close)

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # a journal file vanished, a disk error: say so, try again next time
                log.exception("spend flush failed; retrying")

    async def flush(self) -> None:
        """One pass: other journals first when it is time, then this one's backlog, then the queue
        and the records held in memory; the journal is fsynced at the end."""
        async with self._lock:
            if self._clock() - self._adopted_at >= ADOPT_EVERY_S:
                self._adopted_at = self._clock()
                await self._adopt()
            if self._cursor is not None:
                await self._replay()
            while self._queue and self._cursor is None:
                batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
                if not await self._deliver([rec for rec, _ in batch]):
                    self._fall_behind()
                    break
                self.delivered += len(batch)
                self._advance(batch[-1][1])
            while self._unjournaled:
                held = list(self._unjournaled)[: self.batch_size]
                if not await self._deliver(held):
                    break
                for _ in held:
                    self._unjournaled.popleft()
                self.delivered += len(held)
            if self._journal.dirty:
                await asyncio.to_thread(self._journal.sync)

    def _advance(self, pos: Pos) -> None:
        """Everything up to `pos` is delivered (a cursor behind it moves with it)."""
        cursor = self._cursor
        self._done = self._journal.delivered(pos)
        if cursor is not None and cursor <= pos:
            self._cursor = self._done

    async def _replay(self) -> None:
        while self._cursor is not None:
            end = self._journal.end
            if self._cursor >= end:
                self._cursor = None  # caught up: from the next record on, the queue again
                self._done = self._journal.delivered(end)
                return
            lines, after = await asyncio.to_thread(self._journal.read, self._cursor, self.batch_size, end)
            if not lines or not await self._deliver(_decode(lines)):
                return
            self.replayed += len(lines)
            self._advance(after)  # moves the cursor too

    async def _adopt(self) -> None:
        """Deliver what dead processes (or this slot before this start) left in the data directory."""
        own = self._journal.adopt_own()
        orphans = ([own] if own else []) + await asyncio.to_thread(self._journal.orphans)
        ok = True
        for orphan in orphans:  # locked for us until released; one failure: the rest wait for the next try
            if ok:
                try:
                    ok = await self._deliver_orphan(orphan)
                except Exception:
                    log.exception("delivering the spend journal of %s failed", orphan.name)
                    ok = False
                orphan.release(ok)
            else:
                orphan.release(False)

    async def _deliver_orphan(self, orphan: Orphan) -> bool:
        total = 0
        for path, start in orphan.files:
            offset = start
            while True:
                lines, offset = await asyncio.to_thread(read_lines, path, offset, self.batch_size)
                if not lines:
                    break
                if not await self._deliver(_decode(lines)):
                    return False
                total += len(lines)
        self.replayed += total
        if total:
            log.info("delivered %d spend records left in the journal of %s", total, orphan.name)
        return True

    async def _deliver(self, batch: list[SpendRecord]) -> bool:
        try:
            await asyncio.wait_for(self._sink(batch), self.sink_timeout)
        except Exception as e:  # any sink failure: the records stay where they are (journal, memory)
            self.sink_failures += 1
            log.warning("spend sink failed (%s: %s); %d records wait in the journal", type(e).__name__, e, len(batch))
            return False
        return True


def _decode(lines: list[bytes]) -> list[SpendRecord]:
    """A line that is not a record (a disk's corruption) is logged and skipped: it must not block the rest."""
    out = []
    for line in lines:
        try:
            out.append(_decoder.decode(line))
        except msgspec.DecodeError:
            log.error("skipped a spend journal line that is not a record (%d bytes)", len(line))
    return out
