"""Where the `cache` plugin keeps answers (docs/plugin-cache.md), and what it shares with
`semantic_cache`: the Redis guard (timeouts, back-off, one log line per interval), the stream
accumulator and the answer codec.

    MemoryStore   an LRU bounded by total bytes and entry size, with a TTL; values are bytes
    RedisStore    GET / SET PX under `<redis_prefix>cache:<hex key>`; Redis down is a miss
    RedisGuard    runs one Redis call under a timeout; after a failure Redis is not asked again
                  for `retry_after` seconds; failures are logged at most once per `log_every`
    Accumulator   a streamed answer put back together into a ChatResponse, bounded in size

Answers are stored msgpack-encoded (msgspec): a hit decodes a fresh ChatResponse, so no two
requests ever share one object."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import msgspec

from clawdbot.core.types import ChatChunk, ChatResponse, Message, ToolCall, Usage
from clawdbot.plugins.base import Host, PluginConfigError

if TYPE_CHECKING:
    from clawdbot.state.redis_client import RedisClient

log = logging.getLogger("clawdbot.plugins.cache")

Clock = Callable[[], float]
T = TypeVar("T")

# What one memory entry costs beyond its value's bytes (the key, the tuple, the OrderedDict node).
ENTRY_OVERHEAD = 256
# Answers finished for one of these reasons are stored; anything else (an error, a content
# filter, a cut stream with no finish reason) never is.
STORABLE = frozenset({"stop", "length", "tool_calls"})

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ChatResponse)


def encode_answer(response: ChatResponse) -> bytes:
    return _encoder.encode(response)


def decode_answer(data: bytes) -> ChatResponse:
    return _decoder.decode(data)


class Throttled:
    """A warning that could repeat per request, logged at most once per `every` seconds with how
    many were held back in between (routing/notes.py does the same for the router, without a clock
    to inject)."""

    def __init__(self, logger: logging.Logger, every: float, clock: Clock = time.monotonic) -> None:
        self.log = logger
        self.every = every
        self.clock = clock
        self._last: float | None = None
        self._held = 0

    def warn(self, msg: str, *args: object) -> None:
        now = self.clock()
        if self._last is not None and now - self._last < self.every:
            self._held += 1
            return
        if self._held:
            msg += f" ({self._held} more like it in the last {self.every:g}s)"
        self._last, self._held = now, 0
        self.log.warning(msg, *args)


class MemoryStore:
    """An LRU of encoded answers bounded by `max_bytes` in total (each entry counts its value,
    its key and ENTRY_OVERHEAD) and by `max_entry_bytes` per value; entries live `ttl` seconds."""

    def __init__(self, max_bytes: int, max_entry_bytes: int, clock: Clock = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self.clock = clock
        self.bytes = 0
        self._entries: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()  # key -> (expires at, value)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: bytes, value: bytes, ttl: float) -> bool:
        """False when the value is over `max_entry_bytes` (nothing stored)."""
        if len(value) > self.max_entry_bytes:
            return False
        if key in self._entries:
            self._drop(key)
        now = self.clock()
        self._entries[key] = (now + ttl, value)
        self.bytes += len(key) + len(value) + ENTRY_OVERHEAD
        entries = self._entries
        while self.bytes > self.max_bytes and entries:  # the least recently used go first
            self._drop(next(iter(entries)))
        return True

    def _drop(self, key: bytes) -> None:
        _, value = self._entries.pop(key)
        self.bytes -= len(key) + len(value) + ENTRY_OVERHEAD


class RedisGuard:
    """One Redis client and the rules every call to it follows: bounded by a timeout, any failure
    (refused, timed out, a reply that does not decode) is None for the caller, logged at most once
    per `log_every` seconds; after a failure Redis is not asked again for `retry_after` seconds, so
    an outage costs each request nothing (not even a connection attempt)."""

    def __init__(self, url: str, *, what: str, retry_after: float, log_every: float,
                 clock: Clock = time.monotonic) -> None:
        from clawdbot.state.redis import redis_client

        self.client: RedisClient = redis_client(url)
        self.what = what
        self.retry_after = retry_after
        self.clock = clock
        self.warn = Throttled(log, log_every, clock)
        self._down_until = 0.0
        self.failures = 0

    @property
    def down(self) -> bool:
        return self.clock() < self._down_until

    async def call(self, limit: float, fn: Callable[[], Awaitable[T]]) -> T | None:
        if self._down_until and self.clock() < self._down_until:
            return None
        try:
            async with asyncio.timeout(limit):
                return await fn()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an observer: whatever Redis does, the request goes on uncached
            self.failures += 1
            self._down_until = self.clock() + self.retry_after
            reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            self.warn.warn("%s: Redis unavailable (%s); requests go on uncached, Redis is retried after %gs",
                           self.what, reason, self.retry_after)
            return None

    async def close(self) -> None:
        await self.client.aclose()


class RedisStore:
    """Encoded answers under `<prefix>cache:<hex key>` with a TTL (SET PX), shared by replicas."""

    def __init__(self, guard: RedisGuard, prefix: str, max_entry_bytes: int,
                 read_timeout: float, write_timeout: float) -> None:
        self.guard = guard
        self.prefix = prefix + "cache:"
        self.max_entry_bytes = max_entry_bytes
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout

    async def get(self, key: bytes) -> bytes | None:
        name = self.prefix + key.hex()
        value = await self.guard.call(self.read_timeout, lambda: self.guard.client.get(name))
        return value if isinstance(value, bytes) else None

    async def put(self, key: bytes, value: bytes, ttl: float) -> bool:
        if len(value) > self.max_entry_bytes:
            return False
        name, ms = self.prefix + key.hex(), max(1, int(ttl * 1000))
        done = await self.guard.call(self.write_timeout, lambda: self.guard.client.set(name, value, px=ms))
        return bool(done)


class Accumulator:
    """A streamed answer put back together: content, reasoning, tool calls, finish reason, usage.
    Gives up (`dead`) once more than `limit` characters have come, so a long stream costs nothing
    more than a counter."""

    __slots__ = ("calls", "content", "dead", "finish", "limit", "model", "reasoning", "size", "usage")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.dead = False
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, list[str]] = {}  # index -> [id, name, arguments...]
        self.finish: str | None = None
        self.usage: Usage | None = None
        self.model: str | None = None

    def add(self, chunk: ChatChunk) -> None:
        if chunk.content:
            self.content.append(chunk.content)
            self.size += len(chunk.content)
        if chunk.reasoning:
            self.reasoning.append(chunk.reasoning)
            self.size += len(chunk.reasoning)
        if chunk.tool_calls:
            for d in chunk.tool_calls:
                call = self.calls.get(d.index)
                if call is None:
                    call = self.calls[d.index] = ["", ""]
                    self.size += 64
                if d.id:
                    call[0] = d.id
                if d.name:
                    call[1] += d.name
                if d.arguments:
                    call.append(d.arguments)
                    self.size += len(d.arguments)
        if chunk.finish_reason is not None:
            self.finish = chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.model is not None:
            self.model = chunk.model
        if self.size > self.limit:
            self.dead = True
            self.content.clear()
            self.reasoning.clear()
            self.calls.clear()

    def response(self, id: str, model: str, created: int) -> ChatResponse:
        calls = [ToolCall(c[0], c[1], "".join(c[2:])) for _, c in sorted(self.calls.items())] or None
        message = Message("assistant", "".join(self.content) if self.content or not calls else None,
                          tool_calls=calls, reasoning="".join(self.reasoning) or None)
        return ChatResponse(id, self.model or model, created, message, self.finish, self.usage)


def redis_guard(host: Host, what: str, retry_after: float, log_every: float, clock: Clock) -> RedisGuard:
    """`backend: redis` of a cache plugin: the gateway's Redis behind a RedisGuard, or the config
    error that says why it cannot be."""
    if not host.redis_url:
        raise PluginConfigError("backend: redis needs the gateway's redis_url")
    try:
        return RedisGuard(host.redis_url, what=what, retry_after=retry_after, log_every=log_every, clock=clock)
    except ValueError as exc:
        raise PluginConfigError(f"backend: redis: {exc}") from None
