"""Spend records, written in batches off the request path, never lost when the database is down.

`SpendWriter.record()` only appends to a bounded in-memory queue (no await, no I/O). A background
task hands batches to the sink every `flush_interval_s`, or as soon as `batch_size` records wait.
When the sink fails, the batch goes to the journal (an fsynced local file) and so does everything
after it until the journal is replayed, oldest first, which keeps the sink's order the order of
the records. Delivery is at least once; the sink makes it exactly once by ignoring record ids it
already holds (the SQL sink: a primary key and ON CONFLICT DO NOTHING). Nothing is dropped
silently: a full queue makes `record()` raise `SpendOverflow`, a full journal is logged and
counted and its batch stays in memory until the sink or the journal takes it.
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
from clawdbot.tenancy.journal import Journal, JournalFull

log = logging.getLogger("clawdbot.spend")


def new_record_id() -> str:
    return "sp_" + unique_hex()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


Sink = Callable[[list[SpendRecord]], Awaitable[None]]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SpendRecord)


class SpendOverflow(Exception):
    """The queue is full (the sink and the journal are both behind): the caller must not go on silently."""


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
    ) -> None:
        self._sink = sink
        self._journal = journal
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.interval = flush_interval_s
        self.sink_timeout = sink_timeout_s  # a hung database must not stall the writer: journal instead
        self._queue: deque[SpendRecord] = deque()
        self._held: list[SpendRecord] = []  # a batch taken from the queue, not yet in the sink or the journal
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # counters for metrics
        self.delivered = 0
        self.journaled = 0
        self.replayed = 0
        self.sink_failures = 0
        self.journal_full = 0
        self.overflows = 0

    @property
    def backlog(self) -> int:
        """Records not yet in the sink or the journal."""
        return len(self._queue) + len(self._held)

    @property
    def journal_pending(self) -> bool:
        return self._journal.pending

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="spend-writer")

    def record(self, rec: SpendRecord, force: bool = False) -> None:
        """`force`: past `max_queue` too. For a request already answered, whose admission checked
        the queue had room: its record must not be lost (the overshoot is bounded by the requests
        in flight)."""
        if len(self._queue) >= self.max_queue and not force:
            self.overflows += 1
            raise SpendOverflow(f"spend queue full ({self.max_queue} records)")
        self._queue.append(rec)
        if len(self._queue) >= self.batch_size:
            self._wake.set()

    async def close(self) -> None:
        """Graceful shutdown: stop the loop, then deliver (or journal) everything still queued."""
        if self._task is not None:
            # no cancel: a cancelled flush could leave a batch both journaled and held
            self._stopping = True
            self._wake.set()
            await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """One pass: replay the journal, then move every queued record to the sink or the journal."""
        async with self._lock:
            await self._replay()
            while self._held or self._queue:
                if not self._held:
                    n = min(self.batch_size, len(self._queue))
                    self._held = [self._queue.popleft() for _ in range(n)]
                if not self._journal.pending and await self._deliver(self._held):
                    self.delivered += len(self._held)
                    self._held = []
                    continue
                try:
                    await asyncio.to_thread(self._journal.append, [_encoder.encode(r) for r in self._held])
                except JournalFull as e:
                    self.journal_full += 1
                    log.error("%s", e)
                    return
                self.journaled += len(self._held)
                self._held = []

    async def _replay(self) -> None:
        while self._journal.pending:
            lines, offset = await asyncio.to_thread(self._journal.read, self.batch_size)
            if not await self._deliver([_decoder.decode(line) for line in lines]):
                return
            await asyncio.to_thread(self._journal.commit, offset)
            self.replayed += len(lines)

    async def _deliver(self, batch: list[SpendRecord]) -> bool:
        try:
            await asyncio.wait_for(self._sink(batch), self.sink_timeout)
        except Exception as e:  # any sink failure: the records go to (or stay in) the journal
            self.sink_failures += 1
            log.warning("spend sink failed (%s: %s); %d records journaled", type(e).__name__, e, len(batch))
            return False
        return True
