"""The request log: one record per model request (who, which model, which service answered, every
attempt, status, latency, time to first token, tokens, cost, cache and plugin actions), written to
the state store off the request path and streamed live to `clawdbot tail`.

`record()` (from Pipeline.end, once per request) builds the record's row (a tuple of plain values,
state/request_log_base.py) and appends it to a bounded in-memory queue: no await, no I/O. A
background task writes the queue in batches every `flush_interval` (sooner when `batch_size`
records wait), the store keeping its row budget as it writes, and applies the retention every
`prune_interval`. A full queue
drops the record and counts it (`dropped`), and so does a batch the database refused: the log is an
observer and never blocks or fails a request (spend, which must not be lost, has its own writer and
journal: tenancy/spend.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from clawdbot.config.schema import Config, ModelEntry
from clawdbot.config.schema import RequestLog as Settings
from clawdbot.core.context import RequestContext
from clawdbot.observability.request_hub import Hub
from clawdbot.observability.requests import OPERATIONS
from clawdbot.state.request_log_base import (
    CHAT_PATH,
    COLUMNS,
    SEGMENTS,
    Detail,
    RequestLogStore,
    RequestRecord,
    Row,
    encode_detail,
    from_row,
)

log = logging.getLogger("clawdbot.request_log")
MAX_ERROR_CHARS = 1000
BODIES = COLUMNS.index("request_body")  # request_body, response_body: the row's last two
assert COLUMNS[BODIES:] == ("request_body", "response_body")
WRITE_TIMEOUT_S = 30.0  # a hung database must not stall the writer for ever: the batch is dropped


def body_models(config: Config) -> frozenset[str]:
    """The model names whose requests keep their bodies (`models: {name: {log_bodies: true}}`)."""
    return frozenset(name for name, e in config.models.items() if isinstance(e, ModelEntry) and e.log_bodies)


def check_settings(s: Settings) -> None:
    """Raises ValueError naming the setting that cannot work."""
    for name in ("retention_hours", "flush_interval", "prune_interval"):
        if not getattr(s, name) > 0:
            raise ValueError(f"request_log.{name} must be more than 0")
    for name in ("max_queue", "batch_size", "max_body_bytes", "subscriber_queue"):
        if getattr(s, name) < 1:
            raise ValueError(f"request_log.{name} must be at least 1")
    if s.max_rows < SEGMENTS:  # the SQL store's ring keeps max_rows // SEGMENTS rows a segment
        raise ValueError(f"request_log.max_rows must be at least {SEGMENTS}")
    if s.max_subscribers < 0:
        raise ValueError("request_log.max_subscribers must be 0 or more")


class RequestLog:
    def __init__(self, settings: Settings, store: RequestLogStore | None = None,
                 models: Iterable[str] = ()) -> None:
        """`store` None, or `settings.enabled` false: nothing is stored (the live stream still works)."""
        check_settings(settings)
        self.settings = settings
        self.store = store if settings.enabled else None
        self.hub = Hub(settings.max_subscribers, settings.subscriber_queue)
        self.body_models = frozenset(models)
        self._queue: deque[Row] = deque()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one flush at a time: batches reach the store in order
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failing = False
        # counters for /metrics
        self.written = 0
        self.dropped = 0  # records lost: the queue was full, or the database refused their batch
        self.write_failures = 0
        self.pruned = 0

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def counts(self) -> dict[str, int]:
        """For /metrics: records by outcome (clawdbot_request_log_records_total), live streams."""
        return {"written": self.written, "dropped": self.dropped, "pruned": self.pruned,
                "streams_open": len(self.hub.subscribers), "streams_dropped": self.hub.dropped}

    @property
    def backlog(self) -> int:
        return len(self._queue)

    # -- the request path ------------------------------------------------------------------------

    def wants_bodies(self, ctx: RequestContext, model: str) -> bool:
        """Does this request keep its bodies? Its model's `log_bodies`, or its key's
        (metadata `log_bodies: true`)."""
        if self.store is None:
            return False
        if model in self.body_models:
            return True
        meta = getattr(ctx.identity, "metadata", None)
        return meta is not None and meta.get("log_bodies") is True

    def record(self, ctx: RequestContext, method: str, path: str, status: int) -> None:
        if path not in OPERATIONS:  # model requests only: not health checks, admin calls or /metrics
            return
        hub = self.hub
        if self.store is None and not hub.subscribers:
            return
        capture = ctx.capture
        if capture is None:
            row = build_row(ctx, method, path, status)
        else:  # log_bodies: the row gets them (the live stream never does)
            ctx.capture = None
            request, answer, cut = capture.bodies()
            row = build_row(ctx, method, path, status, cut)
        if hub.subscribers:
            hub.publish(from_row(row))
        if self.store is None:
            return
        if capture is not None:
            row = (*row[:BODIES], request, answer)
        self._enqueue(row)

    def add(self, row: Row) -> None:
        """A record built elsewhere (an MCP call: mcp/record.py), bodies included: streamed live
        without them, and queued as record()'s are."""
        if self.hub.subscribers:
            self.hub.publish(from_row((*row[:BODIES], None, None)))
        if self.store is not None:
            self._enqueue(row)

    def _enqueue(self, row: Row) -> None:
        queue = self._queue
        if len(queue) >= self.settings.max_queue:
            self.dropped += 1
            return
        queue.append(row)
        if len(queue) >= self.settings.batch_size:
            self._wake.set()

    # -- the writer ------------------------------------------------------------------------------

    def start(self) -> None:
        if self.store is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="request-log-writer")

    async def close(self) -> None:
        """Ends the live streams, writes what is queued, closes the store."""
        self.hub.close()
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            await self._task
            self._task = None
        if self.store is not None:
            await self.flush()
            await self.store.close()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings
        # The first retention pass comes with the first batch written (the database is not opened
        # before it is needed), or one interval after start; then every interval. The row budget
        # needs no pass: the store keeps it as it writes.
        next_prune = loop.time() + s.prune_interval
        pruned = False
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), s.flush_interval)
            self._wake.clear()
            await self.flush()
            now = loop.time()
            if now >= next_prune or (self.written and not pruned):
                await self.prune()
                pruned, next_prune = True, now + s.prune_interval

    async def flush(self) -> None:
        async with self._lock:
            await self._flush()

    async def _flush(self) -> None:
        store, queue = self.store, self._queue
        assert store is not None
        while queue:
            batch = [queue.popleft() for _ in range(min(self.settings.batch_size, len(queue)))]
            try:
                pushed_out = await asyncio.wait_for(store.write(batch), WRITE_TIMEOUT_S)
            except Exception as exc:  # any failure: the batch is dropped and counted, never retried for ever
                self.write_failures += 1
                self.dropped += len(batch)
                if not self._failing:
                    log.warning("request log: writing %d records failed (%s: %s); records are dropped until "
                                "the database takes them again", len(batch), type(exc).__name__, exc)
                self._failing = True
                return
            if self._failing:
                log.warning("request log: writing again")
                self._failing = False
            self.written += len(batch)
            self.pruned += pushed_out

    async def prune(self) -> int:
        store = self.store
        assert store is not None
        s = self.settings
        older_than = int((time.time() - s.retention_hours * 3600) * 1000)
        try:
            gone = await store.prune(older_than)
        except Exception as exc:
            log.warning("request log: pruning failed (%s: %s)", type(exc).__name__, exc)
            return 0
        self.pruned += gone
        return gone


def build_row(ctx: RequestContext, method: str, path: str, status: int, cut: bool = False) -> Row:
    """The request's record as its row (COLUMNS order), without bodies."""
    started = ctx.started
    elapsed = time.perf_counter() - started
    p: Any = ctx.identity
    error = ctx.error
    if error is not None and len(error) > MAX_ERROR_CHARS:
        error = error[:MAX_ERROR_CHARS]
    ttft = ctx.first_token_at
    if path == CHAT_PATH:  # the default's own object, which the encoder leaves out
        path = CHAT_PATH
    detail = Detail(
        method, path, ctx.principal, p.user_id if p is not None else None, p.team_id if p is not None else None,
        ctx.service, ctx.upstream_model, ctx.stream, ctx.attempts or None, error, ctx.error_code,
        round((ttft - started) * 1000.0, 3) if ttft is not None else None, ctx.prompt_tokens, ctx.completion_tokens,
        ctx.tokens_estimated, ctx.cost_micros, ctx.cost_free, ctx.plugin_notes or None, cut,
        ctx.response_model, ctx.replay_of)
    return (ctx.request_id, int((time.time() - elapsed) * 1000), p.key_id if p is not None else None, ctx.model,
            status, elapsed * 1000.0, encode_detail(detail).decode(), None, None)


def build_record(ctx: RequestContext, method: str, path: str, status: int) -> RequestRecord:
    return from_row(build_row(ctx, method, path, status))
