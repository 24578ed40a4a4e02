"""The `semantic_cache` plugin: hooks called directly, a real Host whose embeddings come from a
deterministic function (one test: over HTTP from an OpenAI-wire server), the real Redis."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
import pytest
import redis

from clawdbot.core.types import ChatChunk, ChatRequest, ImagePart, Message, TextPart, Tool
from clawdbot.plugins.base import Answer
from clawdbot.plugins.cache import CachePlugin, CacheSettings
from clawdbot.plugins.cache_store import RedisGuard
from clawdbot.plugins.semantic_cache import SemanticCachePlugin, SemanticCacheSettings, lookup_text
from clawdbot.plugins.vector_store import (
    CHUNK,
    ENTRY_OVERHEAD,
    FETCH,
    MemoryVectorStore,
    RedisVectorStore,
    Vector,
    best,
    cosine,
    normalise,
    pack,
    unpack,
)
from tests.tenancy.redis_support import REDIS_URL, fresh_prefix

from .cache_support import (
    Clock,
    EmbeddingServer,
    Host,
    HttpHost,
    angle_vector,
    answer,
    closed_port,
    ctx,
    toy_embed,
)


def req(text: str, system: str = "Be terse.", model: str = "m", **kw: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message("system", system), Message("user", text)], **kw)


def settings(**kw: Any) -> SemanticCacheSettings:
    return msgspec.convert({"embedding_model": "embed-1", **kw}, SemanticCacheSettings)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# Texts whose vectors are at known angles: cos(angle difference) is their similarity.
ANGLES = {"base": 0.0, "near": 15.0, "close": 18.0, "far": 20.0, "other": 90.0, "x1": 100.0, "x2": 180.0,
          "x3": 270.0}


def angles(text: str) -> list[float]:
    return angle_vector(ANGLES[text.split()[0]])


async def store(plugin: SemanticCachePlugin, request: ChatRequest, c: Any, text: str = "Paris.") -> Any:
    """pre, then (on a miss) post with an answer: what the pipeline does for one request."""
    out = await plugin.pre(request, c)
    if not isinstance(out, Answer):
        await plugin.post(answer(text), c)
        await plugin.drain()
    return out


# -- the text, the partition ---------------------------------------------------------------------------


def test_what_is_embedded_and_what_must_match() -> None:
    r = ChatRequest("m", [Message("system", "S"), Message("user", "first"), Message("assistant", "A"),
                          Message("user", [TextPart("  What is\nthe capital?  ")])])
    text, context = lookup_text(r, "last_user")
    assert text == "What is the capital?"
    assert b"first" in context and b"capital" not in context  # earlier turns must match exactly
    other_text = ChatRequest("m", [*r.messages[:3], Message("user", "Something else")])
    assert lookup_text(other_text, "last_user")[1] == context  # type: ignore[index]
    assert lookup_text(ChatRequest("m", [Message("system", "S")]), "last_user") == "no user message"
    img = ChatRequest("m", [Message("user", [TextPart("what is this?"), ImagePart("data:image/png;base64,AA")])])
    assert lookup_text(img, "last_user") == "image"
    # a tool result after the last user message is context, not the embedded text
    tool = ChatRequest("m", [Message("user", "weather?"), Message("tool", "sunny", tool_call_id="c1")])
    text, context = lookup_text(tool, "last_user")
    assert text == "weather?" and b"sunny" in context
    text, context = lookup_text(r, "conversation")
    assert text == "system: S\nuser: first\nassistant: A\nuser: What is the capital?"
    assert b"first" not in context


def test_threshold() -> None:
    plugin = SemanticCachePlugin(settings(threshold=0.95), Host(embed=angles))
    # cos 15 deg = 0.966, cos 18 deg = 0.951, cos 20 deg = 0.940

    async def go() -> None:
        assert await store(plugin, req("base question"), ctx()) is None
        for text, hit in (("near question", True), ("close question", True), ("far question", False),
                          ("other question", False)):
            c = ctx()
            out = await plugin.pre(req(text), c)
            assert isinstance(out, Answer) is hit, text
            if isinstance(out, Answer):
                assert out.headers == {"X-Clawdbot-Cache": "semantic-hit"} and out.cost_free
                assert out.response.message.content == "Paris."
                assert c.plugin_notes is not None and c.plugin_notes[0].startswith("semantic_cache: semantic-hit")
            else:
                assert c.plugin_headers == {"X-Clawdbot-Cache": "miss"}
        c = ctx()
        await plugin.pre(req("near question"), c)
        assert c.plugin_notes == ["semantic_cache: semantic-hit similarity=0.966"]

    run(go())
    strict = SemanticCachePlugin(settings(threshold=0.96), Host(embed=angles))

    async def go_strict() -> None:
        await store(strict, req("base question"), ctx())
        assert isinstance(await strict.pre(req("near question"), ctx()), Answer)
        assert await strict.pre(req("close question"), ctx()) is None

    run(go_strict())


def test_the_same_text_needs_no_embedding() -> None:
    host = Host()
    plugin = SemanticCachePlugin(settings(), host)

    async def go() -> None:
        await store(plugin, req("What is the capital of France?"), ctx())
        assert len(host.calls) == 1 and host.calls[0] == ("embed-1", ["What is the capital of France?"])
        c = ctx()
        out = await plugin.pre(req("What is the capital  of France?"), c)  # whitespace is squashed
        assert isinstance(out, Answer) and len(host.calls) == 1
        assert c.plugin_notes == ["semantic_cache: semantic-hit similarity=1.000"]
        # another wording: the embedding decides (the toy embedder ignores case and punctuation)
        out = await plugin.pre(req("what is the capital of france"), ctx())
        assert isinstance(out, Answer) and len(host.calls) == 2

    run(go())


def test_partitions_never_cross_tenants_models_or_contexts() -> None:
    plugin = SemanticCachePlugin(settings(), Host())
    q = "What is the capital of France?"

    async def go() -> None:
        await store(plugin, req(q), ctx(key="k1", team="t1"))
        assert isinstance(await plugin.pre(req(q), ctx(key="k1", team="t1")), Answer)
        misses = {
            "another key": (req(q), ctx(key="k2", team="t1")),
            "no key": (req(q), ctx(key=None)),
            "another model": (req(q, model="m2"), ctx(key="k1")),
            "another system prompt": (req(q, system="Be verbose."), ctx(key="k1")),
            "another temperature": (req(q, temperature=0.2), ctx(key="k1")),
            "tools": (req(q, tools=[Tool("f")]), ctx(key="k1")),
            "an earlier turn": (ChatRequest("m", [Message("system", "Be terse."), Message("user", "hi"),
                                                  Message("assistant", "hello"), Message("user", q)]), ctx(key="k1")),
        }
        for why, (r, c) in misses.items():
            assert await plugin.pre(r, c) is None, why
        # the near miss: a different question that an embedding finds close
        assert await plugin.pre(req("What is the capital of Germany?"), ctx(key="k1", team="t1")) is None

    run(go())

    other_embedder = SemanticCachePlugin(settings(embedding_model="embed-2"), Host())
    team = SemanticCachePlugin(settings(scope="team"), Host())

    async def go_team() -> None:
        await store(team, req(q), ctx(key="k1", team="t1"))
        assert isinstance(await team.pre(req(q), ctx(key="k2", team="t1")), Answer)
        assert await team.pre(req(q), ctx(key="k3", team="t2")) is None
        await store(other_embedder, req(q), ctx(key="k1"))
        assert other_embedder.memory is not None and plugin.memory is not None
        # same scope, model and context, another embedding model: another partition
        part_a = next(iter(plugin.memory._parts))
        part_b = next(iter(other_embedder.memory._parts))
        assert part_a != part_b

    run(go_team())


def test_what_is_not_cached() -> None:
    host = Host()
    plugin = SemanticCachePlugin(settings(max_text_chars=50, max_temperature=1.0), host)

    async def go() -> None:
        cases = {
            "image": ChatRequest("m", [Message("user", [TextPart("what is this?"), ImagePart("https://x/a.png")])]),
            "long text": req("x " * 40),
            "temperature": req("hot", temperature=1.5),
            "no user message": ChatRequest("m", [Message("system", "S")]),
        }
        for why, r in cases.items():
            for _ in range(2):
                c = ctx()
                assert await plugin.pre(r, c) is None
                await plugin.post(answer("x"), c)
                assert c.plugin_notes is not None and why in c.plugin_notes[0], c.plugin_notes
        assert host.calls == [] and plugin.memory is not None and len(plugin.memory) == 0

    run(go())


def test_opt_outs() -> None:
    host = Host()
    plugin = SemanticCachePlugin(settings(), host)

    async def go() -> None:
        c = ctx(headers={"X-Clawdbot-Cache": "off"})
        assert await store(plugin, req("q"), c) is None
        assert c.plugin_headers == {"X-Clawdbot-Cache": "bypass"} and host.calls == []
        await store(plugin, req("q"), ctx(headers={"Cache-Control": "no-store"}))
        assert host.calls == [] and plugin.memory is not None and len(plugin.memory) == 0
        await store(plugin, req("q"), ctx(headers={"Cache-Control": "no-cache"}), text="fresh")
        assert len(host.calls) == 1 and len(plugin.memory) == 1  # not read, but embedded and stored
        hit = await plugin.pre(req("q"), ctx())
        assert isinstance(hit, Answer) and hit.response.message.content == "fresh"

    run(go())


def test_streams_are_stored_only_when_complete() -> None:
    plugin = SemanticCachePlugin(settings(), Host())

    async def go() -> None:
        c = ctx()
        await plugin.pre(req("cut"), c)
        plugin.on_chunk(ChatChunk(content="Par"), c)
        plugin.on_stream_end(c)
        assert await plugin.pre(req("cut"), ctx()) is None
        c = ctx()
        await plugin.pre(req("whole"), c)
        for ch in (ChatChunk(content="Par"), ChatChunk(content="is."), ChatChunk(finish_reason="stop")):
            plugin.on_chunk(ch, c)
        plugin.on_stream_end(c)
        hit = await plugin.pre(req("whole"), ctx())
        assert isinstance(hit, Answer) and hit.response.message.content == "Paris."

    run(go())


def test_embedding_failures_are_a_miss_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    host = Host()
    plugin = SemanticCachePlugin(settings(log_every=30, embed_timeout=0.05), host, clock=clock)
    caplog.set_level(logging.WARNING, logger="clawdbot.plugins.cache")

    async def go() -> None:
        host.fail = ConnectionError("embedding service down")
        for i in range(4):
            c = ctx()
            assert await plugin.pre(req(f"q{i}"), c) is None
            assert c.plugin_notes == ["semantic_cache: miss (no embedding)"]
            await plugin.post(answer("x"), c)  # nothing to store without a vector
        assert len(caplog.records) == 1 and "embedding service down" in caplog.records[0].getMessage()
        host.fail = None
        host.hang = True  # timed out after embed_timeout
        clock.now += 30
        assert await plugin.pre(req("slow"), ctx()) is None
        assert len(caplog.records) == 2 and "timed out" in caplog.records[1].getMessage()
        assert "(3 more like it" in caplog.records[1].getMessage()
        assert plugin.memory is not None and len(plugin.memory) == 0
        host.hang = False
        await store(plugin, req("q0"), ctx())
        assert isinstance(await plugin.pre(req("q0"), ctx()), Answer)

    run(go())


# -- the memory store -----------------------------------------------------------------------------------


def _vec(deg: float) -> Vector:
    v = normalise(angle_vector(deg))
    assert v is not None
    return v


def test_memory_store_bounds_and_lru() -> None:
    clock = Clock()
    store = MemoryVectorStore(max_entries=3, max_total=5, clock=clock)
    for i in range(4):  # partition a: 4 entries, the bound is 3
        store.put(b"a", bytes([i]), _vec(i * 30), b"a%d" % i, 60)
    assert store.partition_size(b"a") == 3 and store.get_exact(b"a", bytes([0])) is None
    assert store.get_exact(b"a", bytes([1])) == b"a1"  # used: now the most recent in a
    store.put(b"a", bytes([4]), _vec(120), b"a4", 60)  # evicts a2, the least recently used
    assert store.get_exact(b"a", bytes([2])) is None and store.get_exact(b"a", bytes([1])) == b"a1"
    for i in range(3):  # partition b: the total bound (5) evicts the least recently used anywhere
        store.put(b"b", bytes([i]), _vec(i * 30), b"b%d" % i, 60)
    assert len(store) == 5 and store.partition_size(b"a") == 2
    found = run(store.search(b"b", _vec(1), 0.99))
    assert found is not None and found[0] == b"b0" and found[1] > 0.999
    assert run(store.search(b"b", _vec(15), 0.99)) is None
    assert run(store.search(b"nowhere", _vec(0), 0.5)) is None
    clock.now += 60  # the TTL
    assert run(store.search(b"b", _vec(1), 0.5)) is None and store.get_exact(b"a", bytes([1])) is None
    assert store.partition_size(b"b") == 0


def test_memory_store_bytes_bound_and_a_long_scan() -> None:
    dims = 384
    per_entry = 32 * dims + 100 + ENTRY_OVERHEAD
    store = MemoryVectorStore(max_entries=10_000, max_total=10_000, max_bytes=2000 * per_entry, clock=Clock())
    vectors = [normalise(angle_vector(i * 0.01, dims)) for i in range(2500)]
    for i, v in enumerate(vectors):
        assert v is not None
        store.put(b"p", i.to_bytes(4, "little"), v, f"{i:0100d}".encode(), 60)
    assert len(store) == 2000 and store.bytes == 2000 * per_entry
    assert store.get_exact(b"p", (499).to_bytes(4, "little")) is None  # the first 500 went
    # scanned in chunks of CHUNK (the loop runs in between): the best of all 2000 is found
    q = normalise(angle_vector(2100 * 0.01 + 0.001, dims))
    assert q is not None
    found = run(store.search(b"p", q, 0.9))
    assert found is not None and found[0] == f"{2100:0100d}".encode() and found[1] > 0.99999
    assert store.partition_size(b"p") == 2000 > CHUNK


def test_vector_helpers() -> None:
    assert normalise([]) is None and normalise([0.0, 0.0]) is None and normalise([float("nan")]) is None
    v = normalise([3.0, 4.0])
    assert v == pytest.approx((0.6, 0.8))
    assert v is not None and unpack(pack(v)) == pytest.approx(v) and len(pack(v)) == 8
    top_id, top = best(v, [(b"a", (1.0, 0.0)), (b"b", (0.0, 1.0)), (b"c", (1.0,))])  # another dimension: skipped
    assert top_id == b"b" and top == pytest.approx(0.8)
    assert cosine(v, (1.0, 0.0)) == pytest.approx(0.6) and cosine(v, (1.0,)) == 0.0
    assert best(v, []) == (None, -1.0)


# -- Redis ---------------------------------------------------------------------------------------------------


def test_redis_two_replicas_and_the_partition_bound() -> None:
    with fresh_prefix() as prefix:
        clock = Clock(1_700_000_000.0)

        async def go() -> None:
            host = Host(embed=angles, redis_url=REDIS_URL, redis_prefix=prefix)
            a = SemanticCachePlugin(settings(backend="redis", max_entries=3, ttl=100), host, clock=clock)
            b = SemanticCachePlugin(settings(backend="redis", max_entries=3, ttl=100), host, clock=clock)
            try:
                await store(a, req("base question"), ctx())
                c = ctx()
                hit = await b.pre(req("near question"), c)
                assert isinstance(hit, Answer) and hit.response.message.content == "Paris."
                assert c.plugin_notes == ["semantic_cache: semantic-hit similarity=0.966"]
                assert isinstance(await b.pre(req("base question"), ctx()), Answer)  # by the text's hash
                assert b.redis is not None and len(b.redis.vectors) == 1  # unpacked once, then reused
                assert await b.pre(req("far question"), ctx()) is None
                assert await b.pre(req("near question"), ctx(key="k2")) is None
                assert await b.pre(req("near question", model="m2"), ctx()) is None
                for i, text in enumerate(("x1 question", "x2 question", "x3 question")):  # 4 entries: the oldest goes
                    clock.now += 1
                    await store(b, req(text), ctx(), text=f"o{i}")
                assert await a.pre(req("base question"), ctx()) is None
                assert await a.pre(req("near question"), ctx()) is None
                assert await b.pre(req("near question"), ctx()) is None  # evicted: b's unpacked copy is not used
                hit = await a.pre(req("x3 question"), ctx())
                assert isinstance(hit, Answer) and hit.response.message.content == "o2"
                clock.now += 100  # past the TTL: expired entries are not served
                assert await a.pre(req("x3 question"), ctx()) is None
            finally:
                await a.close()
                await b.close()

        run(go())
        sync = redis.Redis.from_url(REDIS_URL)
        try:
            names = sorted(n.decode() for n in sync.scan_iter(match=prefix + "*"))
            assert len(names) == 3 and {n.rsplit(":", 1)[1] for n in names} == {"v", "r", "z"}
            assert all(n.startswith(prefix + "semcache:") for n in names)
            v = next(n for n in names if n.endswith(":v"))
            assert sync.hlen(v) == 3 and sync.zcard(v[:-1] + "z") == 3
            assert all(len(x) == 8 * 4 for x in sync.hvals(v))  # 8 float32
            assert all(0 < sync.pttl(n) <= 100_000 for n in names)
        finally:
            sync.close()


def test_redis_down_is_a_miss() -> None:
    host = Host(redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    plugin = SemanticCachePlugin(settings(backend="redis", retry_after=0), host)

    async def go() -> None:
        try:
            for _ in range(3):
                c = ctx()
                assert await plugin.pre(req("q"), c) is None
                assert c.plugin_headers == {"X-Clawdbot-Cache": "miss"}
                await plugin.post(answer("x"), c)
                await plugin.drain()
            assert plugin.redis is not None and plugin.redis.guard.failures == 9  # get_exact, search, put
        finally:
            await plugin.close()

    run(go())


def test_embeddings_over_http_from_an_openai_wire_server() -> None:
    with EmbeddingServer(toy_embed) as server:
        host = HttpHost(server.url)
        plugin = SemanticCachePlugin(settings(threshold=0.9), host)

        async def go() -> None:
            await store(plugin, req("What is the capital of France?"), ctx())
            hit = await plugin.pre(req("what is the capital of FRANCE!"), ctx())
            assert isinstance(hit, Answer) and hit.response.message.content == "Paris."
            assert await plugin.pre(req("What is the capital of Germany?"), ctx()) is None

        run(go())
        assert [r["input"] for r in server.requests] == [
            ["What is the capital of France?"], ["what is the capital of FRANCE!"], ["What is the capital of Germany?"]]
        assert all(r["model"] == "embed-1" for r in server.requests)


def test_behind_the_exact_cache() -> None:
    """[cache, semantic_cache] as the pipeline runs them: the exact cache misses, the semantic one
    answers; the response says semantic-hit only, and the exact cache (which sees the answer on its
    way back, ctx.cost_free set from the Answer) does not store an approximate answer."""
    exact = CachePlugin(msgspec.convert({}, CacheSettings), Host())
    semantic = SemanticCachePlugin(settings(), Host())

    async def go() -> None:
        c = ctx()
        assert await exact.pre(req("What is the capital of France?"), c) is None
        assert await semantic.pre(req("What is the capital of France?"), c) is None
        await semantic.post(answer("Paris."), c)
        await exact.post(answer("Paris."), c)
        c = ctx()
        assert await exact.pre(req("what is the capital of france"), c) is None
        out = await semantic.pre(req("what is the capital of france"), c)
        assert isinstance(out, Answer) and out.headers == {"X-Clawdbot-Cache": "semantic-hit"}
        assert not c.plugin_headers  # the exact cache's "miss" is taken back
        c.cost_free = out.cost_free  # what the pipeline does before the post hooks
        await exact.post(out.response, c)
        assert await exact.pre(req("what is the capital of france"), ctx()) is None
        assert isinstance(await exact.pre(req("What is the capital of France?"), ctx()), Answer)

    run(go())


def test_redis_search_over_a_partition_larger_than_one_fetch() -> None:
    """600 entries: the vectors come in FETCH-sized HMGETs, once; the next search reads ids only."""
    with fresh_prefix() as prefix:
        async def go() -> None:
            guard = RedisGuard(REDIS_URL, what="test", retry_after=1, log_every=60)
            writer = RedisVectorStore(guard, prefix, 1000, read_timeout=5, write_timeout=5)
            reader = RedisVectorStore(guard, prefix, 1000, read_timeout=5, write_timeout=5)
            try:
                for i in range(600):
                    v = normalise(angle_vector(i * 0.1, 16))
                    assert v is not None and await writer.put(b"p", b"%d" % i, v, b"a%d" % i, 60)
                q = normalise(angle_vector(42.31, 16))
                assert q is not None
                found = await reader.search(b"p", q, 0.99)
                assert found is not None and found[0] == b"a423"
                assert len(reader.vectors) == 600 > 2 * FETCH
                assert await reader.search(b"p", q, 0.99) == found
                assert await reader.search(b"other", q, 0.5) is None
            finally:
                await guard.close()

        run(go())
