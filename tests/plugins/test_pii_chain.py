# ruff: noqa: RUF001  (the Chinese test text is full of full-width punctuation on purpose)
"""The pii plugin in the gateway's own plugin chain (pipeline/plugins.py): built from a `plugins:`
entry by name, masking in pre, restoring a whole answer and a stream whose placeholders are split
across events, refusing in block mode, a key's override, and settings errors with their path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from clawdbot.config.schema import PluginEntry
from clawdbot.core.context import RequestContext
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, Message, Usage
from clawdbot.pipeline.plugins import Chain, EntryError, Run, build_chain
from clawdbot.plugins.pii import PiiPlugin
from clawdbot.plugins.pii_mask import PiiBlocked
from clawdbot.tenancy.principal import Principal
from tests.plugins.support import LocalHost

EMAIL = "li.na@example.cn"
PHONE = "13912345678"


def chain(**settings: Any) -> Chain:
    return build_chain([PluginEntry(name="pii", with_=settings)], LocalHost())


def request() -> ChatRequest:
    return ChatRequest("m", [Message("user", f"我是李娜，电话{PHONE}，邮箱{EMAIL}。请回复我。")], stream=True)


async def events(*texts: str) -> AsyncGenerator[ChatChunk, None]:
    yield ChatChunk(role="assistant")
    for t in texts:
        yield ChatChunk(content=t)
    yield ChatChunk(finish_reason="stop", usage=Usage(10, 5))


def test_built_by_name_and_masks_then_restores_a_stream() -> None:
    c = chain(mode="mask")
    ctx = RequestContext("r")
    [plugin] = c.select(ctx, "m")
    assert isinstance(plugin, PiiPlugin) and plugin.needs == "response"
    run = Run([plugin], ctx)

    async def go() -> tuple[ChatRequest, list[ChatChunk]]:
        req, answer = await run.pre(request())
        assert answer is None
        out = [ch async for ch in run.stream(events("好的，我会打", "<PH", "ONE_1>，并发邮件到<EMAIL", "_1", ">。"))]
        return req, out

    req, out = asyncio.run(go())
    assert req.messages[0].content == "我是李娜，电话<PHONE_1>，邮箱<EMAIL_1>。请回复我。"
    assert "".join(ch.content or "" for ch in out) == f"好的，我会打{PHONE}，并发邮件到{EMAIL}。"
    assert out[0].role == "assistant" and out[-1].finish_reason == "stop" and out[-1].usage == Usage(10, 5)
    assert ctx.plugin_notes == ["pii: masked 2 items (EMAIL 1, PHONE 1)"]


def test_whole_answer_restored_through_the_chain() -> None:
    c = chain()
    ctx = RequestContext("r")
    run = Run(c.select(ctx, "m"), ctx)

    async def go() -> ChatResponse:
        await run.pre(request())
        return await run.post(ChatResponse("id", "m", 0, Message("assistant", "收到：<PHONE_1> / <EMAIL_1>")))

    assert asyncio.run(go()).message.content == f"收到：{PHONE} / {EMAIL}"


def test_block_is_the_plugins_answer_not_its_failure() -> None:
    c = chain(mode="block")
    ctx = RequestContext("r")
    run = Run(c.select(ctx, "m"), ctx)
    with pytest.raises(PiiBlocked) as e:
        asyncio.run(run.pre(request()))
    assert e.value.status == 400 and e.value.code == "pii_detected" and PHONE not in e.value.message


def test_a_keys_override_switches_the_mode() -> None:
    c = chain(mode="mask")
    override = {"plugins": {"pii": {"mode": "redact"}}}
    ctx = RequestContext("r", identity=Principal(kind="key", key_id="k", metadata=override))
    [plugin] = c.select(ctx, "m")
    assert plugin is not c.slots[0].plugin and plugin.needs == "request"
    req, _ = asyncio.run(Run([plugin], ctx).pre(request()))
    assert req.messages[0].content == "我是李娜，电话[PHONE]，邮箱[EMAIL]。请回复我。"


@pytest.mark.parametrize("settings,path", [
    ({"mode": "hide"}, ("plugins", 0, "with", "mode")),
    ({"colour": 1}, ("plugins", 0, "with")),
    ({"types": ["SSN"]}, ("plugins", 0, "with", "types")),
    ({"apply_to": ["robot"]}, ("plugins", 0, "with", "apply_to")),
])
def test_settings_errors_point_at_the_entry(settings: dict[str, Any], path: tuple[Any, ...]) -> None:
    with pytest.raises(EntryError) as e:
        chain(**settings)
    assert e.value.path[:len(path)] == path
