"""POST /v1/completions, OpenAI's legacy text completions, for old clients: the prompt answered as a
chat turn through the same pipeline as /v1/chat/completions (codecs/openai_completions.py says
what is mapped and what is refused)."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator

from clawdbot.api import canonical
from clawdbot.api.exchange import Exchange
from clawdbot.api.http import SSE
from clawdbot.api.relay import DONE, first
from clawdbot.codecs import openai as oa
from clawdbot.codecs import openai_completions as oc
from clawdbot.core import accounting
from clawdbot.core.errors import GatewayError
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, Usage
from clawdbot.pipeline.policy import Pipeline
from clawdbot.tenancy.costs import estimate_text_tokens


async def completions(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    req = oc.parse(body)
    ctx = ex.ctx
    ctx.model, ctx.stream = req.model, req.stream
    ctx.completion_cap = req.max_tokens  # always set (16 by default): a budget reserved the same

    async def whole(resp: ChatResponse) -> None:
        await ex.json(200, oc.encode_response(resp, req.model, int(time.time())))

    await canonical.answer(ex, pl, req, whole, lambda it: _relay(ex, it, req))


async def _relay(ex: Exchange, it: AsyncGenerator[ChatChunk, None], req: ChatRequest) -> None:
    ctx = ex.ctx
    enc = oc.StreamEncoder(req.model, int(time.time()))
    finish: str | None = None
    try:
        chunk = await first(it)
        await ex.start(200, SSE, [(b"cache-control", b"no-cache")])
        while chunk is not None:
            if chunk.content and not accounting.output(ctx):
                finish = "length"  # one more than the client (or its budget) allows
                break
            if chunk.usage is not None:
                accounting.usage(ctx, chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            data = enc.encode(ChatChunk(content=chunk.content, finish_reason=chunk.finish_reason))
            if data:
                await ex.write(data)
            chunk = await first(it)
        accounting.unreported(ctx, lambda: estimate_text_tokens(req.messages[0].text()))
        tail = enc.encode(ChatChunk(finish_reason=finish)) if finish else b""
        if req.include_usage:
            tail += enc.usage(Usage(ctx.prompt_tokens or 0, ctx.completion_tokens or 0))
        await ex.end(tail + DONE)
    except GatewayError as exc:
        if not ex.started:
            raise
        ctx.error, ex.status = exc.message, exc.status
        await ex.end(oa.encode_stream_error(exc.status, exc.type, exc.message, exc.code))
    finally:
        accounting.unreported(ctx, lambda: estimate_text_tokens(req.messages[0].text()))
        await it.aclose()
