"""The plugin chain in process: scope, per-key overrides, hook order on streams, failure policy.
Plugins here are real Plugin subclasses; the chain under test is the one the gateway runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import msgspec
import pytest

from clawdbot.config.schema import PluginEntry
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import Forbidden
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, Message, Usage
from clawdbot.pipeline.plugins import Chain, PluginFailed, Run, Slot, replay
from clawdbot.plugins.base import Host, Plugin
from clawdbot.tenancy.principal import Principal
from tests.plugins.support import LocalHost


class Suffix(msgspec.Struct, forbid_unknown_fields=True):
    text: str = ""


class Holder(Plugin):
    """Holds every chunk's text back and gives it all at the end, followed by its suffix."""

    name = "holder"
    needs = "response"
    Settings = Suffix

    def on_chunk(self, chunk: ChatChunk, ctx: RequestContext) -> ChatChunk | None:
        held = self.state(ctx) or ""
        if chunk.content:
            self.set_state(ctx, held + chunk.content)
            return None
        return chunk

    def on_stream_end(self, ctx: RequestContext) -> ChatChunk | None:
        return ChatChunk(content=(self.state(ctx) or "") + self.settings.text)


class Upper(Plugin):
    name = "upper"
    needs = "response"
    guard = False

    def on_chunk(self, chunk: ChatChunk, ctx: RequestContext) -> ChatChunk | None:
        if chunk.content == "boom":
            raise RuntimeError("observer bug")
        return msgspec.structs.replace(chunk, content=chunk.content.upper()) if chunk.content else chunk


class Strict(Plugin):
    name = "strict"
    needs = "response"

    def on_chunk(self, chunk: ChatChunk, ctx: RequestContext) -> ChatChunk | None:
        if chunk.content == "boom":
            raise RuntimeError("guard bug")
        if chunk.content == "bad":
            raise Forbidden("bad word", code="filtered")
        return chunk



HOST: Host = LocalHost()


def slot(plugin: Plugin, i: int = 0, **scope: Any) -> Slot:
    return Slot(plugin, PluginEntry(name=plugin.name, **scope), i)


async def chunks(*texts: str) -> AsyncGenerator[ChatChunk, None]:
    for t in texts:
        yield ChatChunk(content=t)
    yield ChatChunk(finish_reason="stop", usage=Usage(1, len(texts)))


def collect(run: Run, *texts: str) -> list[ChatChunk]:
    async def body() -> list[ChatChunk]:
        await run.pre(ChatRequest("m", [Message("user", "hi")]))
        return [c async for c in run.stream(chunks(*texts))]

    return asyncio.run(body())


def test_scope_by_model_glob_key_and_tag() -> None:
    p = Upper(None, HOST)
    s = slot(p, models=["chat", "gpt-*"], keys=["k1"], tags=["batch"])
    ctx = RequestContext("r", identity=Principal(kind="key", key_id="k1"), tag="batch")
    assert s.applies(ctx, "chat") and s.applies(ctx, "gpt-4o")
    assert not s.applies(ctx, "other")
    assert not s.applies(RequestContext("r", identity=Principal(kind="key", key_id="k2"), tag="batch"), "chat")
    assert not s.applies(RequestContext("r", identity=Principal(kind="key", key_id="k1")), "chat")
    assert slot(p).applies(RequestContext("r"), "anything")


def test_a_key_turns_a_plugin_off_or_overrides_its_settings() -> None:
    chain = Chain([slot(Holder(Suffix("!"), HOST))], HOST)

    def ctx(plugins: Any) -> RequestContext:
        return RequestContext("r", identity=Principal(kind="key", key_id="k", metadata={"plugins": plugins}))

    assert chain.select(ctx({"holder": False}), "m") == []
    [mine] = chain.select(ctx({"holder": {"text": "?"}}), "m")
    assert mine.settings.text == "?" and mine is chain.select(ctx({"holder": {"text": "?"}}), "m")[0]  # built once
    [fallback] = chain.select(ctx({"holder": {"nope": 1}}), "m")  # invalid: the configured settings
    assert fallback is chain.slots[0].plugin


def test_held_text_comes_out_at_the_end_through_the_plugins_after_it() -> None:
    # config order: upper, holder -> stream order: holder first, then upper
    plugins: list[Plugin] = [Upper(None, HOST), Holder(Suffix("!"), HOST)]
    ctx = RequestContext("r")
    out = collect(Run(plugins, ctx), "a", "b")
    assert [c.content for c in out if c.content] == ["AB!"]
    assert out[0].finish_reason == "stop"  # the finishing chunk went on; the held text followed


def test_an_observer_that_fails_on_a_chunk_is_skipped_a_guard_fails_the_stream() -> None:
    ctx = RequestContext("r")
    out = collect(Run([Upper(None, HOST)], ctx), "x", "boom", "y")
    assert [c.content for c in out if c.content] == ["X", "boom", "Y"]
    with pytest.raises(PluginFailed) as err:
        collect(Run([Strict(None, HOST)], RequestContext("r2")), "x", "boom")
    assert "r2" in err.value.message and "guard bug" not in err.value.message
    with pytest.raises(Forbidden):  # a refusal is the plugin's answer, not its failure
        collect(Run([Strict(None, HOST)], RequestContext("r3")), "bad")


def test_a_whole_answer_replays_as_a_stream() -> None:
    resp = ChatResponse("id", "m", 0, Message("assistant", "hello", reasoning="think"), "stop", Usage(3, 2))
    out = replay(resp)
    assert out[0].reasoning == "think"
    assert [c.content for c in out if c.content] == ["hello"]
    assert out[-1].finish_reason == "stop" and out[-1].usage == Usage(3, 2)
