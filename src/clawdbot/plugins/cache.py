"""The built-in `cache` plugin: an exact-match cache of answers (docs/plugin-cache.md).

The key is a blake2b hash of the request normalised to canonical JSON (sorted keys, no
whitespace): the model, the messages (role, content text and parts, name, tool calls,
tool_call_id, reasoning), tools, tool_choice, response_format, the sampling settings (temperature,
top_p, max_tokens, stop, seed, penalties), options without a canonical field (`extra`), and the
tenant scope. `stream`, `include_usage` and `user` are not part of it: a streamed and a whole
request share an entry (the pipeline replays a hit as a stream).

    pre          a hit: Answer(headers X-Clawdbot-Cache: hit, cost_free); a miss: the header
                 `miss`, the key kept in the request's state
    post         a whole answer finished with stop / length / tool_calls is stored
    on_chunk     a streamed answer is accumulated (bounded by max_entry_bytes) ...
    on_stream_end  ... and stored only when it finished normally (a finish reason came, no error,
                 the client did not go away)

Opt-outs per request: `Cache-Control: no-cache` (do not read, still store), `no-store` (neither),
`X-Clawdbot-Cache: off` (neither): the response says `X-Clawdbot-Cache: bypass`.

An observer (guard = False): a cache failure never fails a request. Redis down is a miss."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Coroutine
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from clawdbot.core.context import RequestContext
from clawdbot.core.errors import GatewayError
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, Message, TextPart
from clawdbot.plugins.base import Answer, Host, Needs, Plugin, PluginConfigError, add_header, doc, header
from clawdbot.plugins.cache_store import (
    STORABLE,
    Accumulator,
    Clock,
    MemoryStore,
    RedisStore,
    decode_answer,
    encode_answer,
    redis_guard,
)

HEADER = "X-Clawdbot-Cache"
MiB = 1024 * 1024
KEY_VERSION = b"clawdbot-cache-v1"
# Options in `extra` that do not change the answer (kept out of the key).
NEUTRAL_EXTRA = frozenset({"metadata", "user", "store", "stream_options", "service_tier"})
# Background writes (Redis) in flight at once; beyond this an answer is not stored.
MAX_PENDING_WRITES = 256

Scope = Literal["key", "user", "team", "global"]
Seconds = Annotated[float, Meta(gt=0, le=366 * 86400)]


Timeout = Annotated[float, Meta(gt=0, le=60)]
Bytes = Annotated[int, Meta(ge=1024, le=1 << 40)]

_canonical = msgspec.json.Encoder(order="sorted")


class CacheSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # (the descriptions are the control panel's help text: msgspec.json.schema carries them)
    backend: Annotated[Literal["memory", "redis"], doc("memory: this process; redis: state.redis_url, "
                                                       "shared by the replicas.")] = "memory"
    scope: Annotated[Scope, doc("Whose answers a request may get: everyone's, or the same key's, "
                                 "team's or user's only.")] = "key"
    ttl: Annotated[Seconds, doc("Seconds an answer is kept.")] = 3600.0
    max_bytes: Annotated[Bytes, doc("memory backend: all entries together, in bytes.")] = 64 * MiB
    # one encoded answer (and what a stream may accumulate)
    max_entry_bytes: Annotated[Bytes, doc("One answer, in bytes (a larger one is not kept).")] = 1 * MiB
    # requests with a higher temperature are neither read nor stored (None: no limit)
    max_temperature: Annotated[Annotated[float, Meta(ge=0)] | None, doc(
        "Requests with a higher temperature are neither read nor stored (not set: no limit).")] = None
    read_timeout: Annotated[Timeout, doc("Seconds for each Redis read.")] = 0.05
    write_timeout: Annotated[Timeout, doc("Seconds for each Redis write (the answer does not wait).")] = 0.5
    retry_after: Annotated[float, Meta(ge=0, le=3600), doc(
        "After a Redis failure, Redis is skipped this many seconds.")] = 1.0
    log_every: Annotated[float, Meta(ge=0, le=86400), doc("At most one warning per this many seconds.")] = 60.0

    def __post_init__(self) -> None:
        if self.max_entry_bytes > self.max_bytes:
            raise PluginConfigError("max_entry_bytes must not be larger than max_bytes")


# -- normalisation ---------------------------------------------------------------------------------


def _content(content: str | list[Any] | None) -> Any:
    """A list holding a single text part is the same request as that text."""
    if isinstance(content, list) and len(content) == 1 and isinstance(content[0], TextPart):
        return content[0].text
    return content


def _message(m: Message) -> tuple[Any, ...]:
    return (m.role, _content(m.content), m.name, m.tool_calls, m.tool_call_id, m.reasoning)


def _extra(extra: dict[str, Any] | None) -> dict[str, Any] | None:
    if not extra:
        return None
    kept = {k: v for k, v in extra.items() if k not in NEUTRAL_EXTRA}
    return kept or None


def settings_of(req: ChatRequest) -> tuple[Any, ...]:
    """Everything that changes the answer besides the messages (an Anthropic thinking budget only
    when there is one: the keys of requests without one stay as they were)."""
    settings = (req.tools, req.tool_choice, req.response_format, req.temperature, req.top_p, req.max_tokens,
                req.stop, req.seed, req.frequency_penalty, req.presence_penalty, _extra(req.extra))
    return settings if req.reasoning_budget is None else (*settings, req.reasoning_budget)


def canonical(req: ChatRequest, scope_id: str) -> bytes:
    """The normalised request as canonical JSON (sorted keys, no whitespace)."""
    return _canonical.encode((scope_id, req.model, [_message(m) for m in req.messages], settings_of(req)))


_HASH = hashlib.blake2b(digest_size=16, person=b"clawdbot-cache")  # copied per key (cheaper than a new one)


def request_key(req: ChatRequest, scope_id: str) -> bytes:
    h = _HASH.copy()
    h.update(canonical(req, scope_id))
    return h.digest()


def scope_id(ctx: RequestContext, scope: Scope) -> str:
    """Whose answers a request may be served: a scope the principal has no id for narrows to the
    next one (team -> user -> key), so a missing id never widens the sharing. Requests without a
    virtual key are partitioned by the principal's kind (master, anonymous)."""
    if scope == "global":
        return "g"
    who = ctx.identity
    if who is not None:
        if scope == "team" and getattr(who, "team_id", None):
            return f"t:{who.team_id}"
        if scope in ("team", "user") and getattr(who, "user_id", None):
            return f"u:{who.user_id}"
        if getattr(who, "key_id", None):
            return f"k:{who.key_id}"
        return f"p:{getattr(who, 'kind', 'unknown')}"
    return f"p:{ctx.principal or 'none'}"


def opt_out(ctx: RequestContext) -> tuple[bool, bool, str | None]:
    """(read, store, why not) from the request's headers."""
    headers = ctx.headers
    if headers is None or (b"x-clawdbot-cache" not in headers and b"cache-control" not in headers):
        return True, True, None
    mine = header(ctx, "x-clawdbot-cache")
    if mine is not None and mine.strip().lower() == "off":
        return False, False, "X-Clawdbot-Cache: off"
    cc = header(ctx, "cache-control")
    if cc is None:
        return True, True, None
    directives = {d.split("=", 1)[0].strip().lower() for d in cc.split(",")}
    if "no-store" in directives:
        return False, False, "no-store"
    if "no-cache" in directives:
        return False, True, "no-cache"
    return True, True, None


def hit(ctx: RequestContext, response: ChatResponse, kind: str) -> Answer:
    """A cached answer. A `miss` another cache plugin said before this one answered is taken back
    (the response carries one X-Clawdbot-Cache header)."""
    if ctx.plugin_headers:
        ctx.plugin_headers.pop(HEADER, None)
    return Answer(response, headers={HEADER: kind}, cost_free=True)


def too_hot(req: ChatRequest, max_temperature: float | None) -> bool:
    """A request sampled hotter than `max_temperature` wants a different answer each time: it is
    neither read nor stored. No temperature (the upstream's default) is never too hot."""
    return max_temperature is not None and req.temperature is not None and req.temperature > max_temperature


# -- the shared recording half: post, on_chunk, on_stream_end, on_error -----------------------------


class Pending:
    """A request whose answer may be stored: where (`key`), and the stream accumulated so far
    (made at the first chunk: a whole answer needs none)."""

    __slots__ = ("_acc", "key", "limit", "max_tokens", "vector")

    def __init__(self, key: Any, max_tokens: int | None, limit: int, vector: Any = None) -> None:
        self.key = key
        self.max_tokens = max_tokens
        self.limit = limit
        self._acc: Accumulator | None = None
        self.vector = vector

    @property
    def acc(self) -> Accumulator:
        if self._acc is None:
            self._acc = Accumulator(self.limit)
        return self._acc


class Recorder(Plugin):
    """What `cache` and `semantic_cache` share: they see the answer (post, or the stream chunk by
    chunk) and store it when it is complete and worth keeping (`_store`)."""

    needs: ClassVar[Needs] = "response"
    guard: ClassVar[bool] = False

    def __init__(self, settings: Any, host: Host) -> None:
        super().__init__(settings, host)
        self._writes: set[asyncio.Task[Any]] = set()
        self.skipped_writes = 0

    def reads_answer(self, ctx: RequestContext) -> bool:
        return isinstance(self.state(ctx), Pending)  # a miss that may be stored

    async def post(self, response: ChatResponse, ctx: RequestContext) -> ChatResponse | None:
        st = self.state(ctx)
        if isinstance(st, Pending):
            self.set_state(ctx, None)
            if self._worth_storing(response.finish_reason, st, ctx):
                self._store(st, response)
        return None

    def on_chunk(self, chunk: ChatChunk, ctx: RequestContext) -> ChatChunk | None:
        st = self.state(ctx)
        if st is not None and not st.acc.dead:
            st.acc.add(chunk)
        return chunk

    def on_stream_end(self, ctx: RequestContext) -> ChatChunk | None:
        st = self.state(ctx)
        if isinstance(st, Pending):
            self.set_state(ctx, None)
            acc = st.acc
            if not acc.dead and self._worth_storing(acc.finish, st, ctx):
                self._store(st, acc.response(f"chatcmpl-{ctx.request_id}", ctx.upstream_model or ctx.model or "",
                                             int(time.time())))
        return None

    async def on_error(self, error: GatewayError, ctx: RequestContext) -> None:
        self.set_state(ctx, None)  # a failed request stores nothing

    def _admit(self, request: ChatRequest, ctx: RequestContext) -> tuple[bool, bool] | None:
        """(read, store) for this request, or None when the cache stays out of it (said in a note):
        too hot a temperature, or the client's opt-out headers."""
        if too_hot(request, self.settings.max_temperature):
            self.note(ctx, "skipped (temperature)")
            return None
        read, store, why = opt_out(ctx)
        if why is not None:
            add_header(ctx, HEADER, "bypass")
            self.note(ctx, f"bypass ({why})")
            if not store:
                return None
        return read, store

    async def close(self) -> None:
        await self.drain()
        redis = getattr(self, "redis", None)
        if redis is not None:
            await redis.guard.close()

    @staticmethod
    def _worth_storing(finish: str | None, st: Pending, ctx: RequestContext) -> bool:
        if finish not in STORABLE or ctx.cancelled or ctx.error is not None or ctx.cost_free:
            return False
        # Cut by the gateway at a budget reservation, not at the client's own limit: not the answer
        # another request with the same key would get.
        return not (finish == "length" and st.max_tokens is None and ctx.completion_cap is not None)

    def _store(self, st: Pending, response: ChatResponse) -> None:
        raise NotImplementedError

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """A write in the background: the response never waits for the store."""
        if len(self._writes) >= MAX_PENDING_WRITES:
            coro.close()
            self.skipped_writes += 1
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def drain(self) -> None:
        """Wait for the background writes (at close; tests use it to know a write is done)."""
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)


class CachePlugin(Recorder):
    name: ClassVar[str] = "cache"
    Settings: ClassVar[type[msgspec.Struct] | None] = CacheSettings

    def __init__(self, settings: CacheSettings, host: Host, *, clock: Clock | None = None) -> None:
        super().__init__(settings, host)
        self.settings: CacheSettings = settings
        clock = clock or time.monotonic
        self.memory: MemoryStore | None = None
        self.redis: RedisStore | None = None
        if settings.backend == "redis":
            guard = redis_guard(host, "cache", settings.retry_after, settings.log_every, clock)
            self.redis = RedisStore(guard, host.redis_prefix, settings.max_entry_bytes,
                                    settings.read_timeout, settings.write_timeout)
        else:
            self.memory = MemoryStore(settings.max_bytes, settings.max_entry_bytes, clock)

    async def pre(self, request: ChatRequest, ctx: RequestContext) -> ChatRequest | Answer | None:
        s = self.settings
        admitted = self._admit(request, ctx)
        if admitted is None:
            return None
        read, store = admitted
        key = request_key(request, scope_id(ctx, s.scope))
        if read:
            data = self.memory.get(key) if self.memory is not None else await self._redis_get(key)
            if data is not None:
                try:
                    response = decode_answer(data)
                except msgspec.DecodeError:
                    response = None  # written by another version: a miss, overwritten below
                if response is not None:
                    self.note(ctx, "hit")
                    return hit(ctx, response, "hit")
            add_header(ctx, HEADER, "miss")
            self.note(ctx, "miss")
        if store:
            self.set_state(ctx, Pending(key, request.max_tokens, s.max_entry_bytes))
        return None

    async def _redis_get(self, key: bytes) -> bytes | None:
        assert self.redis is not None
        return await self.redis.get(key)

    def _store(self, st: Pending, response: ChatResponse) -> None:
        data = encode_answer(response)
        if len(data) > self.settings.max_entry_bytes:
            return
        if self.memory is not None:
            self.memory.put(st.key, data, self.settings.ttl)
        elif self.redis is not None:
            self._spawn(self.redis.put(st.key, data, self.settings.ttl))


__all__ = ["HEADER", "CachePlugin", "CacheSettings", "Pending", "Recorder"]
