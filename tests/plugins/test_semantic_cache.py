"""The `semantic_cache` plugin: hooks called directly, a real Host whose embeddings come from a
deterministic function (one test: over HTTP from an OpenAI-wire server), the real Redis."""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import redis

from clawdbot.cli.cache_report import cosine, normalise
from clawdbot.core.types import ChatChunk, ChatRequest, ImagePart, Message, TextPart, Tool
from clawdbot.plugins.base import Answer
from clawdbot.plugins.cache import CachePlugin, CacheSettings
from clawdbot.plugins.cache_store import RedisGuard
from clawdbot.plugins.semantic_cache import SemanticCachePlugin, SemanticCacheSettings, lookup_text
from clawdbot.plugins.vector_store import (
    ENTRY_OVERHEAD,
    FETCH,
    PARTITION_OVERHEAD,
    ROW_OVERHEAD,
    SLICE,
    MemoryVectorStore,
    RedisVectorStore,
    Vector,
    pack,
    unit,
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


def _vec(deg: float, dims: int = 8) -> Vector:
    v = unit(angle_vector(deg, dims))
    assert v is not None
    return v


def _consistent(store: MemoryVectorStore) -> None:
    """Every entry's row holds its id; the rows are exactly the entries; the bytes add up."""
    total = 0
    for part in store._parts.values():
        assert sorted(part.ids) == sorted(part.entries) and len(part.matrix) >= len(part)
        for id_, entry in part.entries.items():
            assert part.ids[entry.row] == id_ and part.expires[entry.row] == entry.expires
            total += entry.cost
        total += PARTITION_OVERHEAD
    assert store.bytes == total and len(store) == sum(len(p) for p in store._parts.values())


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


def _random_units(n: int, dims: int, seed: int = 1) -> list[Vector]:
    """Random unit vectors: in 1536 dimensions any two are about orthogonal (|similarity| < 0.2)."""
    m = np.random.default_rng(seed).standard_normal((n, dims)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return list(m)


def test_memory_store_bytes_bound_and_a_long_scan() -> None:
    dims = 1536
    per_entry = 4 * dims + 100 + ENTRY_OVERHEAD
    n = SLICE // dims * 2 + 500  # more than two slices of the scan
    store = MemoryVectorStore(max_entries=100_000, max_total=100_000, max_bytes=n * per_entry + PARTITION_OVERHEAD,
                              clock=Clock())
    vectors = _random_units(n + 500, dims)
    for i, v in enumerate(vectors):
        store.put(b"p", i.to_bytes(4, "little"), v, f"{i:0100d}".encode(), 60)
    assert len(store) == n and store.bytes == n * per_entry + PARTITION_OVERHEAD
    _consistent(store)
    assert store.get_exact(b"p", (499).to_bytes(4, "little")) is None  # the first 500 went
    assert store.get_exact(b"p", (500).to_bytes(4, "little")) is not None
    # scanned SLICE floats at a time, the event loop let run in between: the best of all is found
    best = n + 490  # in the last slice
    q = unit(vectors[best] + 0.1 * vectors[0])
    assert q is not None
    events: list[str] = []

    async def go() -> tuple[bytes, float] | None:
        search = asyncio.create_task(store.search(b"p", q, 0.9))

        async def other() -> None:
            while not search.done():
                events.append("other")
                await asyncio.sleep(0)

        ticker = asyncio.create_task(other())
        found = await search
        events.append("found")
        await ticker
        return found

    found = run(go())
    assert found is not None and found[0] == f"{best:0100d}".encode()
    assert found[1] == pytest.approx(float(q @ vectors[best]), abs=1e-6) and found[1] > 0.99
    assert events.index("found") >= 2  # the other task ran between the slices (3 slices: 2 times)
    assert store.partition_size(b"p") == n > SLICE // dims


def test_memory_store_changed_during_a_long_scan() -> None:
    """Entries evicted, added and moved between two slices of a scan: the store stays consistent,
    and a search returns an entry that is there with its own similarity, or nothing (a miss)."""
    dims = 1536
    n = SLICE // dims * 3  # three slices
    vectors = _random_units(n + 1, dims)

    def fill() -> MemoryVectorStore:
        store = MemoryVectorStore(max_entries=n, max_total=n, clock=Clock())
        for i in range(n):
            store.put(b"p", b"%d" % i, vectors[i], b"a%d" % i, 60)
        return store

    async def search_while(store: MemoryVectorStore, target: int, change: Any) -> tuple[bytes, float] | None:
        search = asyncio.create_task(store.search(b"p", vectors[target], 0.5))
        await asyncio.sleep(0)  # the search ran its first slice
        change(store)
        return await search

    def churn(store: MemoryVectorStore, drop: range) -> None:
        store.put(b"p", b"new", vectors[n], b"new", 60)  # appended, then the LRU (b"0") evicted
        for i in drop:  # the last rows move into their places
            store._drop(b"p", b"%d" % i)

    # the best, in the first slice, is dropped after it was scanned: a miss, not another's answer
    store = fill()
    assert run(search_while(store, 10, lambda s: churn(s, range(1, 20)))) is None
    _consistent(store)
    assert store.partition_size(b"p") == n - 19
    # rows dropped and moved in the slices not scanned yet: the best (in the first) is found
    store = fill()
    found = run(search_while(store, 10, lambda s: churn(s, range(n - 100, n - 50))))
    assert found is not None and found[0] == b"a10" and found[1] == pytest.approx(1.0)
    _consistent(store)
    # the best is in the last slice and moves into the first (already scanned): a miss
    store = fill()
    assert run(search_while(store, n - 1, lambda s: churn(s, range(1, 3)))) is None
    _consistent(store)


def test_memory_store_dimensions_and_rows() -> None:
    clock = Clock()
    full = MemoryVectorStore(max_entries=30, max_total=100, clock=clock)
    for i in range(40):
        full.put(b"p", bytes([i]), _vec(i), b"", 60)
    assert len(full._parts[b"p"].matrix) == full.partition_size(b"p") == 30  # full: no spare row
    _consistent(full)
    store = MemoryVectorStore(max_entries=100, max_total=100, clock=clock)
    for i in range(40):
        store.put(b"p", bytes([i]), _vec(i * 2), b"a%d" % i, 60 + i)
    part = store._parts[b"p"]
    assert len(part.matrix) < 50 and part.matrix.dtype == np.float32  # grown by a quarter, not doubled
    _consistent(store)
    for i in range(0, 40, 2):  # holes everywhere: the last rows move into them
        store._drop(b"p", bytes([i]))
    _consistent(store)
    assert len(part.matrix) <= 20 + 20 // 2  # shrunk back
    found = run(store.search(b"p", _vec(21 * 2), 0.99))
    assert found is not None and found[0] == b"a21" and found[1] == pytest.approx(1.0)
    assert run(store.search(b"p", _vec(21 * 2, 16), 0.5)) is None  # another dimension: nothing
    clock.now += 60 + 30  # entries 1..29 (ttl 60 + i) expired: dropped by the next search
    assert run(store.search(b"p", _vec(31 * 2), 0.99)) is not None
    assert store.partition_size(b"p") == 5  # 31, 33, ..., 39
    _consistent(store)
    # a vector of another dimension (the embedding model changed) replaces the partition
    store.put(b"p", b"x", _vec(0, 16), b"x", 60)
    assert store.partition_size(b"p") == 1 and store.get_exact(b"p", bytes([31])) is None
    assert run(store.search(b"p", _vec(0, 16), 0.99)) == (b"x", pytest.approx(1.0))
    _consistent(store)
    store.put(b"p", b"x", _vec(90, 16), b"y", 60)  # the same id again, the partition's only entry: replaced
    assert len(store) == store.partition_size(b"p") == 1
    assert run(store.search(b"p", _vec(90, 16), 0.99)) == (b"y", pytest.approx(1.0))
    _consistent(store)


def test_vector_helpers() -> None:
    for bad in ([], [0.0, 0.0], [float("nan"), 1.0], [float("inf")], [[1.0, 2.0]], ["x"], [None]):
        assert unit(bad) is None, bad
    v = unit([3.0, 4.0])
    assert v is not None and v.dtype == np.float32 and v.tolist() == pytest.approx([0.6, 0.8])
    big = unit([1e200, 1e200])  # scaled first: no overflow
    assert big is not None and big.tolist() == pytest.approx([0.5 ** 0.5] * 2)
    assert pack(v) == struct.pack("<2f", 0.6, 0.8)  # the wire format: little-endian float32
    assert unpack(pack(v)).tolist() == pytest.approx([0.6, 0.8]) and unpack(b"").size == 0
    with pytest.raises(ValueError):
        unpack(b"abc")
    # the report's pure-Python similarity (no numpy) agrees with the plugin's
    n = normalise([3.0, 4.0])
    assert n == pytest.approx((0.6, 0.8)) and normalise([]) is None and normalise([0.0]) is None
    assert n is not None and cosine(n, (1.0, 0.0)) == pytest.approx(0.6) and cosine(n, (1.0,)) == 0.0
    assert float(v @ np.array([1.0, 0.0], dtype=np.float32)) == pytest.approx(cosine(n, (1.0, 0.0)))


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
                    v = unit(angle_vector(i * 0.1, 16))
                    assert v is not None and await writer.put(b"p", b"%d" % i, v, b"a%d" % i, 60)
                q = unit(angle_vector(42.31, 16))
                assert q is not None
                # two at once, both cold: both fetch, the partition's matrix keeps one row per id
                found, again = await asyncio.gather(reader.search(b"p", q, 0.99), reader.search(b"p", q, 0.99))
                assert found is not None and found[0] == b"a423" and again == found
                assert len(reader.vectors) == 600 > 2 * FETCH
                assert await reader.search(b"p", q, 0.99) == found
                assert await reader.search(b"other", q, 0.5) is None
            finally:
                await guard.close()

        run(go())


def test_redis_unpacked_vectors_a_matrix_per_partition() -> None:
    """What a process keeps of Redis's vectors: a matrix per partition, the rows no longer live
    dropped, partitions evicted least recently used beyond the byte bound; vectors of another
    dimension or not finite (garbage) are never compared."""
    dims = 16
    cost = 10 * (4 * dims + ROW_OVERHEAD) + PARTITION_OVERHEAD  # a partition of 10 vectors
    with fresh_prefix() as prefix:
        async def go() -> None:
            guard = RedisGuard(REDIS_URL, what="test", retry_after=1, log_every=60)
            writer = RedisVectorStore(guard, prefix, 10, read_timeout=5, write_timeout=5)
            reader = RedisVectorStore(guard, prefix, 10, read_timeout=5, write_timeout=5, cache_bytes=cost + 500)
            try:
                for p in (b"p1", b"p2"):
                    for i in range(10):
                        assert await writer.put(p, b"%d" % i, _vec(i * 10, dims), p + b"-%d" % i, 60)
                found = await reader.search(b"p1", _vec(40, dims), 0.99)
                assert found == (b"p1-4", pytest.approx(1.0))
                assert len(reader.vectors) == 10 and reader.vectors.bytes == cost
                assert await reader.search(b"p2", _vec(50, dims), 0.99) == (b"p2-5", pytest.approx(1.0))
                assert len(reader.vectors) == 10 and reader.vectors.bytes == cost  # p1 went: the bound
                # 5 more in p2: its 5 oldest are evicted in Redis, and dropped here at the next search
                for i in range(10, 15):
                    assert await writer.put(b"p2", b"%d" % i, _vec(i * 10, dims), b"p2-%d" % i, 60)
                assert await reader.search(b"p2", _vec(50, dims), 0.99) == (b"p2-5", pytest.approx(1.0))
                assert await reader.search(b"p2", _vec(40, dims), 0.99) is None  # b"4" is gone
                assert len(reader.vectors) == 10 and reader.vectors.bytes == cost
                # another dimension (a replica with another model) and garbage: skipped, not cached
                assert await writer.put(b"p2", b"short", _vec(0, 8), b"short", 60)
                nan = np.full(dims, np.nan, dtype=np.float32)
                assert await writer.put(b"p2", b"nan", nan, b"nan", 60)
                assert await reader.search(b"p2", _vec(80, dims), 0.99) == (b"p2-8", pytest.approx(1.0))
                assert len(reader.vectors) == 8  # the 10 in 16 dimensions, less the 2 evicted by those 2
                # a query of the other dimension: its vectors are compared, in a matrix of their own
                assert await reader.search(b"p2", _vec(0, 8), 0.5) == (b"short", pytest.approx(1.0))
                assert len(reader.vectors) == 1
                assert await reader.search(b"p2", _vec(80, dims), 0.99) == (b"p2-8", pytest.approx(1.0))
                assert len(reader.vectors) == 8
                # a partition larger than the bound alone is searched, and not kept
                small = RedisVectorStore(guard, prefix, 10, read_timeout=5, write_timeout=5, cache_bytes=1000)
                assert await small.search(b"p1", _vec(40, dims), 0.99) == (b"p1-4", pytest.approx(1.0))
                assert len(small.vectors) == 0 and small.vectors.bytes == 0
                assert await reader.search(b"empty", _vec(20, dims), 0.5) is None
            finally:
                await guard.close()

        run(go())


# -- without numpy ----------------------------------------------------------------------------------------

# A process in which numpy is not installed, as far as imports can tell, then the real CLI.
_NO_NUMPY = """
import sys

class NoNumpy:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" or name.startswith("numpy."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoNumpy())
from clawdbot.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _clawdbot(*args: str, python: str = _NO_NUMPY) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDBOT_")}
    return subprocess.run([sys.executable, "-c", python, *args], capture_output=True, text=True, timeout=120,
                          env=env, check=False)


def test_without_numpy_semantic_cache_is_a_config_error(tmp_path: Path) -> None:
    """numpy is the `semantic` extra: without it the gateway refuses a config with semantic_cache
    at start (file:line, and what to install); the rest of it, the CLI included, needs no numpy."""
    config = tmp_path / "clawdbot.yaml"
    config.write_text(f"""\
data_dir: {tmp_path / "data"}
services:
  - name: up
    type: openai
    endpoint: "http://127.0.0.1:9"
models:
  chat: [up/m]
plugins:
  - name: cache
  - name: semantic_cache
    with: {{embedding_model: chat}}
""", encoding="utf-8")
    out = _clawdbot("serve", "--config", str(config), "--port", "0")
    assert out.returncode == 2, out.stderr
    assert (f"clawdbot: configuration error: {config}:10: plugins[1].name: semantic_cache needs numpy "
            f"(No module named 'numpy'): pip install 'clawdbot[semantic]'") in out.stderr
    out = _clawdbot("cache", "report", "--help")
    assert out.returncode == 0 and "--pairs" in out.stdout
    # with numpy installed, it is imported when the plugin is built, not when the gateway starts
    out = _clawdbot(python="import sys, clawdbot.cli.main, clawdbot.cli.serve, clawdbot.plugins.semantic_cache; "
                           "print('numpy' in sys.modules)")
    assert out.returncode == 0 and out.stdout == "False\n", out.stderr
