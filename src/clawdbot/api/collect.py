"""A non-stream answer collected from a stream, for requests whose budget reserved a completion cap:
the gateway can stop a stream at the cap, but not a single body, and some upstreams ignore the
limit they were sent (docs/limits.md: the overspend bound holds whatever the upstream does)."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator

import msgspec

from clawdbot.api.exchange import Exchange
from clawdbot.api.relay import completion_id, count_unreported, forward, trace_headers
from clawdbot.codecs import openai as oa
from clawdbot.core import accounting
from clawdbot.core.context import RequestContext
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, Message, ToolCall, Usage
from clawdbot.pipeline.gateway import Gateway
from clawdbot.providers.base import RawResponse
from clawdbot.providers.openai_http import decode_sse


class Answer:
    """Canonical chunks -> one assistant message."""

    __slots__ = ("calls", "content", "finish", "reasoning")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, tuple[list[str], list[str], list[str]]] = {}  # index -> (id, name, arguments)
        self.finish: str | None = None

    def add(self, c: ChatChunk) -> None:
        if c.content:
            self.content.append(c.content)
        if c.reasoning:
            self.reasoning.append(c.reasoning)
        for t in c.tool_calls or ():
            cid, name, args = self.calls.setdefault(t.index, ([], [], []))
            if t.id:
                cid[:] = [t.id]
            if t.name:
                name[:] = [t.name]
            if t.arguments:
                args.append(t.arguments)
        if c.finish_reason is not None:
            self.finish = c.finish_reason

    def message(self) -> Message:
        calls = [ToolCall("".join(i), "".join(n), "".join(a)) for _, (i, n, a) in sorted(self.calls.items())]
        content = "".join(self.content) if self.content or not calls else None
        return Message("assistant", content, tool_calls=calls or None, reasoning="".join(self.reasoning) or None)


async def collect(ex: Exchange, gw: Gateway, body: bytes, req: ChatRequest) -> ChatResponse:
    """The answer to `req` (not a stream), read from a stream cut at `ctx.completion_cap`."""
    ctx = ex.ctx
    sreq = msgspec.structs.replace(req, stream=True, include_usage=True)
    result = await forward(gw, oa.rewrite_request(body, None, True, stream=True), sreq, ctx)
    trace_headers(ex)
    if isinstance(result, RawResponse):
        assert result.chunks is not None  # asked for a stream
        it = decode_sse(result.chunks, ctx.service)
    else:
        assert not isinstance(result, ChatResponse)  # asked for a stream
        it = result
    try:
        answer = await _read(it, ctx)
        accounting.answered(ctx)  # the client sees the answer now, as with any non-stream answer
        count_unreported(ctx, body)
        usage = Usage(ctx.prompt_tokens or 0, ctx.completion_tokens or 0)
        return ChatResponse(completion_id(), req.model, int(time.time()), answer.message(), answer.finish, usage)
    finally:
        await it.aclose()  # a cut drops the connection: the upstream stops generating


async def _read(it: AsyncGenerator[ChatChunk, None], ctx: RequestContext) -> Answer:
    answer = Answer()
    async for chunk in it:
        if not accounting.chunk(ctx, chunk):
            answer.finish = "length"  # one more than the budget allows
            break
        answer.add(chunk)
    return answer
