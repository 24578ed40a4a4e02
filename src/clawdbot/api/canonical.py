"""Answering a request of a translated dialect (Anthropic's /v1/messages, Ollama's /api/*, legacy
/v1/completions) through the canonical types: the message bound, the plugins' pre hooks (a
short-circuit answer, response headers), the gateway, the plugins that read the answer, and the
accounting of a whole answer. The dialect's module only parses and encodes: it passes how a whole
answer is written (`whole`) and how a stream is relayed (`relay`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable

from clawdbot.api.exchange import Exchange
from clawdbot.api.relay import plugin_headers, trace_headers
from clawdbot.core import accounting
from clawdbot.core.errors import BadRequest, GatewayError
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse
from clawdbot.pipeline.plugins import Run, replayed
from clawdbot.pipeline.policy import Pipeline

Whole = Callable[[ChatResponse], Awaitable[None]]
Relay = Callable[[AsyncGenerator[ChatChunk, None]], Awaitable[None]]


def check_messages(pl: Pipeline, req: ChatRequest) -> None:
    """server.max_messages, for every dialect (after translation: a tool result is a message)."""
    check_count(pl, len(req.messages))


def check_count(pl: Pipeline, count: int) -> None:
    limit = pl.gateway.config.server.max_messages
    if count > limit:
        raise BadRequest(f"messages: at most {limit} messages (got {count})", param="messages",
                         code="array_above_max_length")


async def answer(ex: Exchange, pl: Pipeline, req: ChatRequest, whole: Whole, relay: Relay) -> None:
    check_messages(pl, req)
    await answer_with(ex, pl, req, pl.plugins(ex.ctx, req.model), whole, relay)


async def answer_with(ex: Exchange, pl: Pipeline, req: ChatRequest, run: Run | None, whole: Whole,
                      relay: Relay) -> None:
    """`answer`, for a caller that checked the message bound and chose the plugins (`run`) itself."""
    ctx = ex.ctx
    try:
        found = None
        if run is not None:
            req, found = await run.pre(req)
            plugin_headers(ex, found.headers if found is not None else None)
        if found is not None:  # a plugin answered (a cache hit, a canned reply)
            assert run is not None
            ctx.cost_free, ctx.service = found.cost_free, None
            if req.stream:
                return await relay(run.stream(replayed(found.response)))
            return await respond(ex, await run.post(found.response), whole)
        reader = run if run is not None and run.reads_answer else None
        gw = pl.gateway
        if req.stream:
            it = await gw.open_stream(req, ctx)
            trace_headers(ex)
            return await relay(reader.stream(it) if reader is not None else it)
        resp = await gw.chat(req, ctx)
        trace_headers(ex)
        await respond(ex, await reader.post(resp) if reader is not None else resp, whole)
    except GatewayError as exc:
        await pl.failed(run, exc)
        raise


async def respond(ex: Exchange, resp: ChatResponse, whole: Whole) -> None:
    """A whole canonical answer: counted, then written in the client's dialect (`whole`)."""
    u = resp.usage
    accounting.answered(ex.ctx, u.prompt_tokens if u else None, u.completion_tokens if u else None)
    await whole(resp)
