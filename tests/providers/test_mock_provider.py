from __future__ import annotations

import asyncio

from clawdbot.config.schema import Service
from clawdbot.core.context import RequestContext
from clawdbot.core.types import ChatChunk, ChatRequest, EmbeddingRequest, Message, Tool
from clawdbot.providers.base import Embedder, Prober, Provider
from clawdbot.providers.mock import MockProvider


def req(text: str, **kw: object) -> ChatRequest:
    return ChatRequest(model="m", messages=[Message("system", "be nice"), Message("user", text)], **kw)  # type: ignore[arg-type]


def test_chat_reply_and_usage() -> None:
    p = MockProvider(Service(name="mock", type="mock"))
    assert isinstance(p, Provider) and isinstance(p, Embedder) and isinstance(p, Prober)
    ctx = RequestContext("r")
    resp = asyncio.run(p.chat(req("hello there"), ctx))
    assert resp.message.content == "mock reply to: hello there"
    assert resp.finish_reason == "stop"
    assert resp.usage is not None and (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (4, 5)
    assert ctx.upstream_model == "mock-model"


def test_stream_word_by_word_with_max_tokens() -> None:
    p = MockProvider(Service(name="mock", type="mock", metadata={"model_id": "demo"}))

    async def collect() -> list[ChatChunk]:
        return [c async for c in p.stream(req("one two three", max_tokens=4), RequestContext("r"))]

    chunks = asyncio.run(collect())
    assert "".join(c.content or "" for c in chunks) == "mock reply to: one"
    assert [c.content for c in chunks if c.content] == ["mock", " reply", " to:", " one"]
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_tool_call() -> None:
    p = MockProvider(Service(name="mock", type="mock"))
    tools = [Tool(name="get_weather"), Tool(name="lookup")]
    resp = asyncio.run(p.chat(req("please call lookup now", tools=tools), RequestContext("r")))
    assert resp.finish_reason == "tool_calls"
    assert resp.message.tool_calls is not None and resp.message.tool_calls[0].name == "lookup"
    plain = asyncio.run(p.chat(req("please call lookup now"), RequestContext("r")))
    assert plain.message.tool_calls is None

    async def collect() -> list[ChatChunk]:
        return [c async for c in p.stream(req("call get_weather", tools=tools), RequestContext("r"))]

    chunks = asyncio.run(collect())
    deltas = [d for c in chunks for d in (c.tool_calls or [])]
    assert deltas[0].name == "get_weather" and chunks[-1].finish_reason == "tool_calls"


def test_probe_and_embed() -> None:
    p = MockProvider(Service(name="mock", type="mock", metadata={"model_id": "demo"}))
    probe = asyncio.run(p.probe())
    assert probe.ok and probe.models == ["demo"]
    emb = asyncio.run(p.embed(EmbeddingRequest(model="demo", input=["a b", "c"]), RequestContext("r")))
    again = asyncio.run(p.embed(EmbeddingRequest(model="demo", input=["a b"]), RequestContext("r")))
    assert len(emb.vectors) == 2 and all(len(v) == 8 for v in emb.vectors)
    assert emb.vectors[0] == again.vectors[0] and emb.vectors[0] != emb.vectors[1]
    assert emb.usage.prompt_tokens == 3
