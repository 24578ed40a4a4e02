"""The built-in `semantic_cache` plugin: an answer served for a request that means the same as one
already answered (docs/plugin-cache.md).

What is compared. By default (`embed: last_user`) the text of the last user message is embedded
(Host.embed with `embedding_model`); everything else must match exactly: the system prompt, the
earlier turns (and any after that message), tools, tool_choice, response_format and the sampling
settings go, as canonical JSON, into a hash that is part of the partition. So a hit is served only
in the same conversation context: "What is the capital of France?" after the same system prompt,
never after another one, nor as the second turn of an unrelated chat. With `embed: conversation`
the text of every message ("role: text" lines) is embedded, and only the tools and settings must
match exactly: a looser cache for chats whose system prompt varies in wording.

Partitions. (scope id, model, embedding model, context hash): a hit never crosses tenants (the
`scope`, as for `cache`), models, or embedding models (their vectors do not compare).

Not cached: a last user message with an image (the image is not embedded), text longer than
`max_text_chars` (it is not cut: two long prompts that differ after the cut would look the same),
requests hotter than `max_temperature`, opt-outs as for `cache`.

A lookup: the text's hash first (the same text already stored: a hit without an embedding), then
the embedding and a scan of the partition. Embedding failures and timeouts (`embed_timeout`) are a
miss, logged at most once per `log_every` seconds; the request goes on."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

import msgspec
from msgspec import Meta

from clawdbot.core.context import RequestContext
from clawdbot.core.types import ChatRequest, ChatResponse, ImagePart, Message
from clawdbot.plugins.base import Answer, Host, PluginConfigError, add_header
from clawdbot.plugins.cache import (
    HEADER,
    Bytes,
    Pending,
    Recorder,
    Scope,
    Seconds,
    Timeout,
    _canonical,
    _message,
    hit,
    scope_id,
    settings_of,
)
from clawdbot.plugins.cache_store import Clock, Throttled, decode_answer, encode_answer, log, redis_guard

if TYPE_CHECKING:  # numpy (the `semantic` extra) is imported when a plugin is built, not before
    from clawdbot.plugins.vector_store import MemoryVectorStore, RedisVectorStore, Vector

MiB = 1024 * 1024
INSTALL = "pip install 'clawdbot[semantic]'"


class SemanticCacheSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    embedding_model: Annotated[str, Meta(min_length=1)]
    threshold: Annotated[float, Meta(gt=0, le=1)] = 0.95  # cosine similarity for a hit
    ttl: Seconds = 3600.0
    max_entries: Annotated[int, Meta(ge=1, le=100_000)] = 1000  # per partition (bounds a search)
    max_total_entries: Annotated[int, Meta(ge=1, le=10_000_000)] = 10_000  # memory backend, all partitions
    # the memory backend's entries (a 384-dim vector: 1.5 KiB), or with Redis the vectors unpacked locally
    max_bytes: Bytes = 64 * MiB
    backend: Literal["memory", "redis"] = "memory"
    scope: Scope = "key"
    embed: Literal["last_user", "conversation"] = "last_user"
    max_text_chars: Annotated[int, Meta(ge=1, le=1_000_000)] = 4000  # longer: not cached
    max_entry_bytes: Bytes = 1 * MiB
    max_temperature: Annotated[float, Meta(ge=0)] | None = None
    # seconds for the embedding; the pipeline bounds the whole pre hook by `timeout` (2 s)
    embed_timeout: Annotated[float, Meta(gt=0, le=1.5)] = 1.0
    read_timeout: Timeout = 0.05
    write_timeout: Timeout = 0.5
    retry_after: Annotated[float, Meta(ge=0, le=3600)] = 1.0
    log_every: Annotated[float, Meta(ge=0, le=86400)] = 60.0


def _has_image(m: Message) -> bool:
    return isinstance(m.content, list) and any(isinstance(p, ImagePart) for p in m.content)


def _squash(text: str) -> str:
    return " ".join(text.split())


def lookup_text(req: ChatRequest, embed: str) -> tuple[str, bytes] | str:
    """(the text to embed, the canonical JSON of what must match exactly), or why the request is
    not cached."""
    msgs = req.messages
    if embed == "conversation":
        if any(_has_image(m) for m in msgs):
            return "image"
        text = "\n".join(f"{m.role}: {_squash(m.text())}" for m in msgs if m.text())
        context = _canonical.encode(("conversation", settings_of(req)))
        return (text, context) if text else "no text"
    i = len(msgs) - 1
    while i >= 0 and msgs[i].role != "user":
        i -= 1
    if i < 0:
        return "no user message"
    last = msgs[i]
    if _has_image(last):
        return "image"
    text = _squash(last.text())
    if not text:
        return "no text"
    shape = [_message(m) if j != i else ("user", None, last.name) for j, m in enumerate(msgs)]
    return text, _canonical.encode(("last_user", shape, settings_of(req)))


def _digest(*parts: bytes | str) -> bytes:
    h = hashlib.blake2b(digest_size=16, person=b"clawdbot-scache")
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(len(b).to_bytes(4, "little"))
        h.update(b)
    return h.digest()


class SemanticCachePlugin(Recorder):
    name: ClassVar[str] = "semantic_cache"
    Settings: ClassVar[type[msgspec.Struct] | None] = SemanticCacheSettings
    timeout: ClassVar[float] = 2.0  # an embedding (embed_timeout) and two Redis reads

    def __init__(self, settings: SemanticCacheSettings, host: Host, *, clock: Clock | None = None) -> None:
        try:
            from clawdbot.plugins.vector_store import MemoryVectorStore, RedisVectorStore, unit
        except ImportError as exc:  # numpy missing (or broken)
            raise PluginConfigError(f"semantic_cache needs numpy ({exc}): {INSTALL}") from None
        super().__init__(settings, host)
        self.settings: SemanticCacheSettings = settings
        self._unit = unit
        mono: Clock = clock or time.monotonic
        self.memory: MemoryVectorStore | None = None
        self.redis: RedisVectorStore | None = None
        self.embed_warn = Throttled(log, settings.log_every, mono)
        if settings.backend == "redis":
            guard = redis_guard(host, "semantic_cache", settings.retry_after, settings.log_every, mono)
            self.redis = RedisVectorStore(guard, host.redis_prefix, settings.max_entries, settings.read_timeout,
                                          settings.write_timeout, clock or time.time, settings.max_bytes)
        else:
            self.memory = MemoryVectorStore(settings.max_entries, settings.max_total_entries, settings.max_bytes, mono)

    async def pre(self, request: ChatRequest, ctx: RequestContext) -> ChatRequest | Answer | None:
        s = self.settings
        admitted = self._admit(request, ctx)
        if admitted is None:
            return None
        read, store = admitted
        found = lookup_text(request, s.embed)
        if isinstance(found, str):
            self.note(ctx, f"skipped ({found})")
            return None
        text, context = found
        if len(text) > s.max_text_chars:
            self.note(ctx, "skipped (long text)")
            return None
        partition = _digest(scope_id(ctx, s.scope), request.model, s.embedding_model, context)
        id_ = _digest(text)
        if read:
            payload = (self.memory.get_exact(partition, id_) if self.memory is not None
                       else await self._redis().get_exact(partition, id_))
            answer = self._answer(payload, 1.0, ctx)
            if answer is not None:
                return answer
        vector = await self._embed(text, ctx)
        if read:
            if vector is not None:
                found_ = await (self.memory.search(partition, vector, s.threshold) if self.memory is not None
                                else self._redis().search(partition, vector, s.threshold))
                if found_ is not None:
                    answer = self._answer(found_[0], found_[1], ctx)
                    if answer is not None:
                        return answer
            add_header(ctx, HEADER, "miss")
            self.note(ctx, "miss" if vector is not None else "miss (no embedding)")
        if store and vector is not None:
            self.set_state(ctx, Pending((partition, id_), request.max_tokens, s.max_entry_bytes, vector))
        return None

    def _answer(self, payload: bytes | None, similarity: float, ctx: RequestContext) -> Answer | None:
        if payload is None:
            return None
        try:
            response = decode_answer(payload)
        except msgspec.DecodeError:
            return None
        self.note(ctx, f"semantic-hit similarity={similarity:.3f}")
        return hit(ctx, response, "semantic-hit")

    def _redis(self) -> RedisVectorStore:
        assert self.redis is not None
        return self.redis

    async def _embed(self, text: str, ctx: RequestContext) -> Vector | None:
        s = self.settings
        try:
            async with asyncio.timeout(s.embed_timeout):
                vectors = await self.host.embed(s.embedding_model, [text], ctx)
            vector = self._unit(vectors[0])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an observer: no embedding is a miss
            reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            self.embed_warn.warn("semantic_cache: no embedding from %r (%s); requests go on uncached",
                                 s.embedding_model, reason)
            return None
        if vector is None:
            self.embed_warn.warn("semantic_cache: %r returned an empty or zero vector", s.embedding_model)
        return vector

    def _store(self, st: Pending, response: ChatResponse) -> None:
        data = encode_answer(response)
        if len(data) > self.settings.max_entry_bytes:
            return
        partition, id_ = st.key
        if self.memory is not None:
            self.memory.put(partition, id_, st.vector, data, self.settings.ttl)
        elif self.redis is not None:
            self._spawn(self.redis.put(partition, id_, st.vector, data, self.settings.ttl))


__all__ = ["SemanticCachePlugin", "SemanticCacheSettings", "lookup_text"]
