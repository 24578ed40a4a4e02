"""The exact `cache` plugin, its hooks called directly with real contexts, requests, chunks and
Redis (tests/tenancy/redis_support.py: a fresh key prefix per test, deleted afterwards)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec
import pytest
import redis

from clawdbot.core.errors import UpstreamError
from clawdbot.core.types import (
    ChatChunk,
    ChatRequest,
    ImagePart,
    Message,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from clawdbot.plugins.base import Answer, PluginConfigError
from clawdbot.plugins.cache import CachePlugin, CacheSettings, canonical, request_key, scope_id
from clawdbot.plugins.cache_store import ENTRY_OVERHEAD, MemoryStore, RedisGuard, RedisStore, encode_answer
from clawdbot.state.redis import redis_client
from tests.tenancy.redis_support import REDIS_URL, fresh_prefix

from .cache_support import Clock, Host, answer, closed_port, ctx, silent_server


def req(text: str = "What is the capital of France?", **kw: Any) -> ChatRequest:
    msgs = kw.pop("messages", None) or [Message("system", "Be terse."), Message("user", text)]
    return ChatRequest(model=kw.pop("model", "m"), messages=msgs, **kw)


def settings(**kw: Any) -> CacheSettings:
    return msgspec.convert(kw, CacheSettings)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- keys ------------------------------------------------------------------------------------------


def test_equivalent_requests_share_a_key() -> None:
    base = req()
    same = [
        req(stream=True, include_usage=True),  # a streamed request is replayed from the same entry
        req(user="end-user-7"),
        req(extra={"metadata": {"tag": "x"}}),
        req(messages=[Message("system", [TextPart("Be terse.")]),
                      Message("user", [TextPart("What is the capital of France?")])]),
    ]
    for r in same:
        assert request_key(r, "k:1") == request_key(base, "k:1"), r
    # dicts in any key order are the same canonical JSON
    a = req(tools=[Tool("f", parameters={"type": "object", "properties": {"x": {"type": "integer"}}})],
            response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": {"a": 1, "b": 2}}})
    b = req(tools=[Tool("f", parameters={"properties": {"x": {"type": "integer"}}, "type": "object"})],
            response_format={"json_schema": {"schema": {"b": 2, "a": 1}, "name": "n"}, "type": "json_schema"})
    assert request_key(a, "k:1") == request_key(b, "k:1")
    # msgspec decodes an integer temperature into the float field: 1 and 1.0 are one value
    one = msgspec.json.decode(b'{"model": "m", "messages": [], "temperature": 1}', type=ChatRequest)
    assert request_key(one, "k:1") == request_key(ChatRequest("m", [], temperature=1.0), "k:1")
    text = canonical(base, "k:1")
    assert b" " not in text.replace(b"Be terse.", b"").replace(b"What is the capital of France?", b"")


def test_every_setting_that_changes_the_answer_changes_the_key() -> None:
    base = req()
    msgs = base.messages
    different = {
        "model": req(model="other"),
        "text": req("What is the capital of Germany?"),
        "role": req(messages=[Message("developer", "Be terse."), msgs[1]]),
        "name": req(messages=[msgs[0], Message("user", msgs[1].content, name="bob")]),
        "system": req(messages=[Message("system", "Be verbose."), msgs[1]]),
        "two parts": req(messages=[msgs[0], Message("user", [TextPart("What is the capital"),
                                                             TextPart(" of France?")])]),
        "image": req(messages=[msgs[0], Message("user", [TextPart("What is the capital of France?"),
                                                         ImagePart("https://x/y.png")])]),
        "tool call": req(messages=[*msgs, Message("assistant", None, tool_calls=[ToolCall("c1", "f", "{}")])]),
        "tool result": req(messages=[*msgs, Message("tool", "1", tool_call_id="c1")]),
        "tool result id": req(messages=[*msgs, Message("tool", "1", tool_call_id="c2")]),
        "tools": req(tools=[Tool("f")]),
        "tool_choice": req(tool_choice="required"),
        "forced tool": req(tool_choice={"name": "f"}),
        "response_format": req(response_format={"type": "json_object"}),
        "temperature": req(temperature=0.7),
        "temperature 2": req(temperature=0.71),
        "top_p": req(top_p=0.9),
        "max_tokens": req(max_tokens=10),
        "stop": req(stop=["\n"]),
        "seed": req(seed=1),
        "frequency_penalty": req(frequency_penalty=0.5),
        "presence_penalty": req(presence_penalty=0.5),
        "logit_bias": req(extra={"logit_bias": {"1": 5}}),
        "thinking budget": req(reasoning_budget=3000),
        "thinking budget 2": req(reasoning_budget=4000),
    }
    keys = {name: request_key(r, "k:1") for name, r in different.items()}
    keys["base"] = request_key(base, "k:1")
    assert len(set(keys.values())) == len(keys)


def test_scope_ids() -> None:
    full = ctx(key="k1", user="u1", team="t1")
    assert scope_id(full, "key") == "k:k1"
    assert scope_id(full, "user") == "u:u1"
    assert scope_id(full, "team") == "t:t1"
    assert scope_id(full, "global") == "g"
    # no team: the user; no user either: the key (a missing id never widens the sharing)
    assert scope_id(ctx(key="k1", user="u1"), "team") == "u:u1"
    assert scope_id(ctx(key="k1"), "team") == "k:k1"
    assert scope_id(ctx(key="k1"), "user") == "k:k1"
    assert scope_id(ctx(key=None), "key") == "p:none"


def _roundtrip(plugin: CachePlugin, request: ChatRequest, c: Any, text: str = "Paris.") -> Any:
    async def go() -> Any:
        out = await plugin.pre(request, c)
        if isinstance(out, Answer):
            return out
        await plugin.post(answer(text), c)
        await plugin.drain()
        return None
    return run(go())


def test_tenants_apart_unless_the_scope_says_so() -> None:
    host = Host()
    per_key = CachePlugin(settings(), host)
    assert _roundtrip(per_key, req(), ctx(key="k1", user="u1", team="t1")) is None
    assert _roundtrip(per_key, req(), ctx(key="k2", user="u1", team="t1")) is None  # another key: a miss
    assert isinstance(_roundtrip(per_key, req(), ctx(key="k1", user="u1", team="t1")), Answer)

    per_team = CachePlugin(settings(scope="team"), host)
    assert _roundtrip(per_team, req(), ctx(key="k1", user="u1", team="t1")) is None
    assert isinstance(_roundtrip(per_team, req(), ctx(key="k2", user="u2", team="t1")), Answer)
    assert _roundtrip(per_team, req(), ctx(key="k3", user="u3", team="t2")) is None

    everyone = CachePlugin(settings(scope="global"), host)
    assert _roundtrip(everyone, req(), ctx(key="k1", team="t1")) is None
    assert isinstance(_roundtrip(everyone, req(), ctx(key="k9", team="t9")), Answer)


# -- the hooks ----------------------------------------------------------------------------------------


def test_miss_then_hit() -> None:
    plugin = CachePlugin(settings(), Host())

    async def go() -> None:
        c = ctx()
        assert await plugin.pre(req(), c) is None
        assert c.plugin_headers == {"X-Clawdbot-Cache": "miss"}
        assert c.plugin_notes == ["cache: miss"]
        assert await plugin.post(answer("Paris."), c) is None
        c2 = ctx(request_id="r-2")
        hit = await plugin.pre(req(stream=True), c2)
        assert isinstance(hit, Answer)
        assert hit.headers == {"X-Clawdbot-Cache": "hit"} and hit.cost_free
        assert hit.response == answer("Paris.")
        assert c2.plugin_notes == ["cache: hit"]
        # each hit is a fresh object: a change by one request never reaches another
        hit.response.message.content = "changed"
        again = await plugin.pre(req(), ctx())
        assert isinstance(again, Answer) and again.response.message.content == "Paris."

    run(go())


@pytest.mark.parametrize("finish", [None, "content_filter", "error"])
def test_unfinished_or_filtered_answers_are_not_stored(finish: str | None) -> None:
    plugin = CachePlugin(settings(), Host())

    async def go() -> None:
        c = ctx()
        await plugin.pre(req(), c)
        await plugin.post(answer("Paris.", finish=finish), c)
        assert await plugin.pre(req(), ctx()) is None

    run(go())


def test_tool_calls_and_length_are_stored_a_budget_cut_is_not() -> None:
    plugin = CachePlugin(settings(), Host())

    async def go() -> None:
        tool = answer("")
        tool.message = Message("assistant", None, tool_calls=[ToolCall("c1", "get_weather", '{"x": 1}')])
        tool.finish_reason = "tool_calls"
        c = ctx()
        await plugin.pre(req("weather?"), c)
        await plugin.post(tool, c)
        hit = await plugin.pre(req("weather?"), ctx())
        assert isinstance(hit, Answer) and hit.response.message.tool_calls == tool.message.tool_calls

        c = ctx()
        await plugin.pre(req("long", max_tokens=5), c)
        await plugin.post(answer("a b c d e", finish="length"), c)
        assert isinstance(await plugin.pre(req("long", max_tokens=5), ctx()), Answer)

        c = ctx()
        c.completion_cap = 3  # the gateway cut it at a budget reservation: not the client's limit
        await plugin.pre(req("cut"), c)
        await plugin.post(answer("a b c", finish="length"), c)
        assert await plugin.pre(req("cut"), ctx()) is None

    run(go())


def test_errors_and_answers_from_another_cache_are_not_stored() -> None:
    plugin = CachePlugin(settings(), Host())

    async def go() -> None:
        c = ctx()
        await plugin.pre(req(), c)
        await plugin.on_error(UpstreamError("boom"), c)
        await plugin.post(answer("Paris."), c)
        assert await plugin.pre(req(), ctx()) is None

        c = ctx()
        await plugin.pre(req(), c)
        c.cost_free = True  # answered by another cache plugin: not stored again
        await plugin.post(answer("Paris?"), c)
        assert await plugin.pre(req(), ctx()) is None

    run(go())


def test_max_temperature_skips_reading_and_storing() -> None:
    plugin = CachePlugin(settings(max_temperature=0.5), Host())

    async def go() -> None:
        for temperature in (0.9, 0.9):
            c = ctx()
            assert await plugin.pre(req(temperature=temperature), c) is None
            assert c.plugin_headers is None and c.plugin_notes == ["cache: skipped (temperature)"]
            await plugin.post(answer("x"), c)
        c = ctx()
        await plugin.pre(req(temperature=0.5), c)
        await plugin.post(answer("x"), c)
        assert isinstance(await plugin.pre(req(temperature=0.5), ctx()), Answer)
        c = ctx()
        await plugin.pre(req(), c)  # no temperature: the upstream's default, cached
        await plugin.post(answer("y"), c)
        assert isinstance(await plugin.pre(req(), ctx()), Answer)

    run(go())


def test_opt_out_headers() -> None:
    plugin = CachePlugin(settings(), Host())

    async def go() -> None:
        c = ctx(headers={"Cache-Control": "no-store"})  # neither read nor stored
        assert await plugin.pre(req(), c) is None
        assert c.plugin_headers == {"X-Clawdbot-Cache": "bypass"}
        assert c.plugin_notes == ["cache: bypass (no-store)"]
        await plugin.post(answer("one"), c)
        c = ctx(headers={"X-Clawdbot-Cache": "OFF"})
        assert await plugin.pre(req(), c) is None
        await plugin.post(answer("two"), c)
        assert await plugin.pre(req(), ctx(headers={"Cache-Control": "no-cache"})) is None
        c = ctx(headers={"Cache-Control": "no-cache"})  # not read, but stored
        await plugin.pre(req(), c)
        await plugin.post(answer("three"), c)
        hit = await plugin.pre(req(), ctx(headers={"Cache-Control": "max-age=60"}))
        assert isinstance(hit, Answer) and hit.response.message.content == "three"
        # a stored entry is not read past no-cache, and a no-cache request refreshes it
        c = ctx(headers={"Cache-Control": "max-age=0, No-Cache"})
        assert await plugin.pre(req(), c) is None
        await plugin.post(answer("four"), c)
        hit = await plugin.pre(req(), ctx())
        assert isinstance(hit, Answer) and hit.response.message.content == "four"
        c = ctx(headers={"Cache-Control": "no-cache, no-store"})
        assert await plugin.pre(req(), c) is None
        await plugin.post(answer("five"), c)
        hit = await plugin.pre(req(), ctx())
        assert isinstance(hit, Answer) and hit.response.message.content == "four"

    run(go())


# -- streams ------------------------------------------------------------------------------------------


def _stream(plugin: CachePlugin, c: Any, chunks: list[ChatChunk]) -> None:
    for ch in chunks:
        assert plugin.on_chunk(ch, c) is ch  # an observer: the chunk goes on unchanged
    assert plugin.on_stream_end(c) is None


def test_a_complete_stream_is_stored_whole() -> None:
    plugin = CachePlugin(settings(), Host())

    async def go() -> None:
        c = ctx()
        c.upstream_model = "llama3"
        assert await plugin.pre(req(stream=True), c) is None
        _stream(plugin, c, [
            ChatChunk(role="assistant", reasoning="think "), ChatChunk(reasoning="hard"),
            ChatChunk(content="Par"), ChatChunk(content="is."),
            ChatChunk(tool_calls=[ToolCallDelta(0, id="c1", name="f", arguments='{"a"')]),
            ChatChunk(tool_calls=[ToolCallDelta(1, id="c2", name="g", arguments="{}")]),
            ChatChunk(tool_calls=[ToolCallDelta(0, arguments=": 1}")]),
            ChatChunk(finish_reason="tool_calls"), ChatChunk(usage=Usage(7, 4)),
        ])
        hit = await plugin.pre(req(), ctx())
        assert isinstance(hit, Answer)
        r = hit.response
        assert r.model == "llama3" and r.finish_reason == "tool_calls" and r.usage == Usage(7, 4)
        assert r.message.content == "Paris." and r.message.reasoning == "think hard"
        assert r.message.tool_calls == [ToolCall("c1", "f", '{"a": 1}'), ToolCall("c2", "g", "{}")]

    run(go())


def test_a_cut_failed_or_abandoned_stream_is_not_stored() -> None:
    plugin = CachePlugin(settings(), Host())

    async def go() -> None:
        c = ctx()
        await plugin.pre(req("cut"), c)
        _stream(plugin, c, [ChatChunk(content="Par"), ChatChunk(content="is")])  # no finish reason
        assert await plugin.pre(req("cut"), ctx()) is None

        c = ctx()
        await plugin.pre(req("failed"), c)
        plugin.on_chunk(ChatChunk(content="Par"), c)
        await plugin.on_error(UpstreamError("midstream"), c)
        _stream(plugin, c, [ChatChunk(finish_reason="stop")])
        assert await plugin.pre(req("failed"), ctx()) is None

        c = ctx()
        await plugin.pre(req("gone"), c)
        c.cancelled = True  # the client went away
        _stream(plugin, c, [ChatChunk(content="Paris."), ChatChunk(finish_reason="stop")])
        assert await plugin.pre(req("gone"), ctx()) is None

        c = ctx()
        await plugin.pre(req("error"), c)
        c.error = "upstream_error"
        _stream(plugin, c, [ChatChunk(content="Paris."), ChatChunk(finish_reason="stop")])
        assert await plugin.pre(req("error"), ctx()) is None

    run(go())


def test_a_stream_over_max_entry_bytes_is_given_up() -> None:
    plugin = CachePlugin(settings(max_entry_bytes=2048), Host())

    async def go() -> None:
        c = ctx()
        await plugin.pre(req("long"), c)
        _stream(plugin, c, [ChatChunk(content="x" * 1000) for _ in range(3)] + [ChatChunk(finish_reason="stop")])
        st = c.plugin_state
        assert st is not None and st["cache"] is None
        assert await plugin.pre(req("long"), ctx()) is None
        c = ctx()
        await plugin.pre(req("short"), c)
        _stream(plugin, c, [ChatChunk(content="x" * 1000), ChatChunk(finish_reason="stop")])
        assert isinstance(await plugin.pre(req("short"), ctx()), Answer)
        c = ctx()  # a whole answer over the bound is not stored either
        await plugin.pre(req("whole"), c)
        await plugin.post(answer("y" * 3000), c)
        assert await plugin.pre(req("whole"), ctx()) is None

    run(go())


# -- the memory store ----------------------------------------------------------------------------------


def test_memory_lru_is_bounded_by_bytes() -> None:
    value = b"v" * 1000
    per_entry = 16 + len(value) + ENTRY_OVERHEAD
    store = MemoryStore(max_bytes=3 * per_entry, max_entry_bytes=2000, clock=Clock())
    keys = [bytes([i]) * 16 for i in range(5)]
    for k in keys[:3]:
        assert store.put(k, value, 60)
    assert len(store) == 3 and store.bytes == 3 * per_entry
    assert store.get(keys[0]) == value  # used: now the most recent
    store.put(keys[3], value, 60)  # evicts the least recently used: keys[1]
    assert store.get(keys[1]) is None and store.get(keys[0]) == value and store.get(keys[2]) == value
    store.put(keys[3], b"w" * 1000, 60)  # replacing an entry does not count it twice
    assert len(store) == 3 and store.bytes == 3 * per_entry
    assert not store.put(keys[4], b"x" * 2001, 60)  # over max_entry_bytes
    assert store.get(keys[4]) is None and store.bytes <= store.max_bytes
    big = MemoryStore(max_bytes=10 * per_entry, max_entry_bytes=1000, clock=Clock())
    for i in range(1000):
        big.put(i.to_bytes(16, "little"), value, 60)
    assert len(big) == 10 and big.bytes == 10 * per_entry


def test_memory_ttl_with_an_injected_clock() -> None:
    clock = Clock()
    plugin = CachePlugin(settings(ttl=60), Host(), clock=clock)

    async def go() -> None:
        c = ctx()
        await plugin.pre(req(), c)
        await plugin.post(answer("Paris."), c)
        clock.now += 59.9
        assert isinstance(await plugin.pre(req(), ctx()), Answer)
        clock.now += 0.1
        assert await plugin.pre(req(), ctx()) is None
        assert plugin.memory is not None and len(plugin.memory) == 0

    run(go())


def test_settings_are_checked() -> None:
    with pytest.raises(msgspec.ValidationError, match="max_entry_bytes"):
        settings(max_bytes=4096, max_entry_bytes=8192)
    with pytest.raises(msgspec.ValidationError, match="bakend"):
        settings(bakend="redis")
    with pytest.raises(msgspec.ValidationError):
        settings(scope="everyone")
    with pytest.raises(PluginConfigError, match="redis_url"):
        CachePlugin(settings(backend="redis"), Host())


# -- Redis ------------------------------------------------------------------------------------------------


def test_redis_two_replicas_share_entries() -> None:
    with fresh_prefix() as prefix:
        async def go() -> None:
            a = CachePlugin(settings(backend="redis", ttl=30), Host(redis_url=REDIS_URL, redis_prefix=prefix))
            b = CachePlugin(settings(backend="redis", ttl=30), Host(redis_url=REDIS_URL, redis_prefix=prefix))
            try:
                c = ctx()
                assert await a.pre(req(), c) is None
                await a.post(answer("Paris."), c)
                await a.drain()
                hit = await b.pre(req(stream=True), ctx())
                assert isinstance(hit, Answer) and hit.response == answer("Paris.")
                assert await b.pre(req(), ctx(key="k2")) is None  # another tenant
                # a streamed answer stored by one replica is served by the other
                c = ctx()
                await b.pre(req("2+2?"), c)
                _stream(b, c, [ChatChunk(content="4"), ChatChunk(finish_reason="stop")])
                await b.drain()
                hit = await a.pre(req("2+2?"), ctx())
                assert isinstance(hit, Answer) and hit.response.message.content == "4"
            finally:
                await a.close()
                await b.close()

        run(go())
        sync = redis.Redis.from_url(REDIS_URL)
        try:
            names = sorted(sync.scan_iter(match=prefix + "*"))
            assert len(names) == 2 and all(n.startswith(f"{prefix}cache:".encode()) for n in names)
            assert all(0 < sync.pttl(n) <= 30_000 for n in names)  # TTL by Redis (SET PX)
            assert msgspec.msgpack.decode(sync.get(names[0]))  # values msgspec-encoded
        finally:
            sync.close()


def test_redis_entry_bound() -> None:
    with fresh_prefix() as prefix:
        async def go() -> None:
            plugin = CachePlugin(settings(backend="redis", max_entry_bytes=2048), Host(redis_url=REDIS_URL,
                                                                                   redis_prefix=prefix))
            try:
                c = ctx()
                await plugin.pre(req(), c)
                await plugin.post(answer("x" * 3000), c)
                await plugin.drain()
                assert await plugin.pre(req(), ctx()) is None
            finally:
                await plugin.close()

        run(go())


def test_redis_down_is_a_miss_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    down = f"redis://127.0.0.1:{closed_port()}/0"
    # retry_after 0: every request tries Redis (and is refused); still one log line per interval
    plugin = CachePlugin(settings(backend="redis", retry_after=0, log_every=60), Host(redis_url=down), clock=clock)
    caplog.set_level(logging.WARNING, logger="clawdbot.plugins.cache")

    async def go() -> None:
        try:
            for _ in range(5):
                c = ctx()
                assert await plugin.pre(req(), c) is None
                assert c.plugin_headers == {"X-Clawdbot-Cache": "miss"}
                await plugin.post(answer("Paris."), c)
                await plugin.drain()
            assert plugin.redis is not None and plugin.redis.guard.failures == 10  # 5 reads, 5 writes
            assert len(caplog.records) == 1
            assert "Redis unavailable" in caplog.records[0].getMessage()
            clock.now += 60
            assert await plugin.pre(req(), ctx()) is None
            assert len(caplog.records) == 2
            assert "(9 more like it in the last 60s)" in caplog.records[1].getMessage()
        finally:
            await plugin.close()

    run(go())


def test_after_a_failure_redis_is_left_alone_for_retry_after(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    down = f"redis://127.0.0.1:{closed_port()}/0"
    plugin = CachePlugin(settings(backend="redis", retry_after=2), Host(redis_url=down), clock=clock)
    caplog.set_level(logging.WARNING, logger="clawdbot.plugins.cache")

    async def go() -> None:
        try:
            for _ in range(20):
                assert await plugin.pre(req(), ctx()) is None
            assert plugin.redis is not None and plugin.redis.guard.failures == 1
            clock.now += 2
            assert await plugin.pre(req(), ctx()) is None
            assert plugin.redis.guard.failures == 2
            assert len(caplog.records) == 1
        finally:
            await plugin.close()

    run(go())


def test_a_hung_redis_costs_a_read_timeout() -> None:
    with silent_server() as port:
        async def go() -> None:
            guard = RedisGuard(f"redis://127.0.0.1:{port}/0", what="cache", retry_after=0, log_every=60)
            store = RedisStore(guard, "x:", 4096, read_timeout=0.05, write_timeout=0.05)
            try:
                started = time.perf_counter()
                assert await store.get(b"k" * 16) is None
                assert not await store.put(b"k" * 16, encode_answer(answer("a")), 10)
                assert time.perf_counter() - started < 2.0  # two timeouts, far from the 5 s socket timeout
                assert guard.failures == 2
            finally:
                await guard.close()

        run(go())


def test_recovers_when_redis_comes_back() -> None:
    """Redis down, then up (the same plugin, a fresh prefix on the real Redis): caching resumes
    once retry_after has passed."""
    with fresh_prefix() as prefix:
        clock = Clock()
        plugin = CachePlugin(settings(backend="redis", retry_after=5), Host(redis_url=REDIS_URL, redis_prefix=prefix),
                       clock=clock)

        async def go() -> None:
            assert plugin.redis is not None
            real = plugin.redis.guard.client
            plugin.redis.guard.client = redis_client(f"redis://127.0.0.1:{closed_port()}/0")
            try:
                assert await plugin.pre(req(), ctx()) is None
                assert plugin.redis.guard.down
                await plugin.redis.guard.client.aclose()
                plugin.redis.guard.client = real
                c = ctx()
                assert await plugin.pre(req(), c) is None  # still backing off: no call
                await plugin.post(answer("Paris."), c)
                await plugin.drain()
                clock.now += 5
                assert await plugin.pre(req(), ctx()) is None  # nothing was stored while down
                c = ctx()
                await plugin.pre(req(), c)
                await plugin.post(answer("Paris."), c)
                await plugin.drain()
                assert isinstance(await plugin.pre(req(), ctx()), Answer)
            finally:
                await plugin.close()

        run(go())
