"""POST /v1/messages (Anthropic's dialect) and /v1/messages/count_tokens, through the same pipeline
as /v1/chat/completions: metering admitted the request before dispatch (api/metered.py reads its
head), plugins see canonical requests and answers, the gateway routes to any service type, and the
answer goes back as Anthropic's message object or its SSE events (codecs/anthropic*.py)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from clawdbot.api import canonical
from clawdbot.api.exchange import Exchange
from clawdbot.api.http import SSE
from clawdbot.api.metered import read_head
from clawdbot.api.relay import first
from clawdbot.codecs import anthropic as an
from clawdbot.codecs.anthropic_stream import StreamEncoder
from clawdbot.core import accounting
from clawdbot.core.errors import BadRequest, GatewayError
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, Usage
from clawdbot.pipeline.policy import Pipeline
from clawdbot.tenancy.costs import estimate_prompt_tokens

PATH = "/v1/messages"


async def messages(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    req = an.parse_messages_request(body)
    ctx = ex.ctx
    ctx.model, ctx.stream = req.model, req.stream
    ctx.completion_cap = req.max_tokens  # required in this dialect; a budget reserved the same

    async def whole(resp: ChatResponse) -> None:
        await ex.json(200, an.encode_message_response(resp, req.model))

    await canonical.answer(ex, pl, req, whole, lambda it: _relay(ex, it, req, body))


def _estimate(body: bytes) -> int:
    try:
        return read_head(body, PATH).prompt_estimate()
    except BadRequest:
        return 0


async def _relay(ex: Exchange, it: AsyncGenerator[ChatChunk, None], req: ChatRequest, body: bytes) -> None:
    """Canonical chunks as Anthropic's events; output counted and cut at the completion cap (a cut
    ends with stop_reason max_tokens), errors after the start as an `error` event."""
    ctx = ex.ctx
    enc = StreamEncoder(req.model)
    try:
        chunk = await first(it)  # an error before the first chunk is still an HTTP error
        await ex.start(200, SSE, [(b"cache-control", b"no-cache")])
        out = [enc.start(ctx.prompt_tokens or _estimate(body))]
        while chunk is not None:
            if (chunk.content or chunk.tool_calls or chunk.reasoning) and not accounting.output(ctx):
                enc.finish = "length"  # one more than the client (or its budget) allows
                break
            if chunk.usage is not None:
                accounting.usage(ctx, chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            out.append(enc.encode(chunk))
            data = b"".join(out)
            if data:
                await ex.write(data)
            out = []
            chunk = await first(it)
        accounting.unreported(ctx, lambda: _estimate(body))
        if enc.usage is None or enc.finish == "length":
            enc.usage = _counted(ctx.prompt_tokens, ctx.completion_tokens)
        await ex.end(b"".join(out) + enc.done())
    except GatewayError as exc:
        if not ex.started:
            raise
        ctx.error, ex.status = exc.message, exc.status
        await ex.end(StreamEncoder.error(exc.status, exc.message))
    finally:
        accounting.unreported(ctx, lambda: _estimate(body))
        await it.aclose()


def _counted(prompt: int | None, completion: int | None) -> Usage:
    return Usage(prompt or 0, completion or 0)


async def count_tokens(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    """An estimate (the gateway's own: characters / 4 plus per-message overhead, as metering
    reserves with); no upstream is asked. The model must be one the gateway serves."""
    req = an.parse_count_tokens_request(body)
    pl.gateway.resolver.resolve(req.model)  # ModelNotFound (404) for a model nobody serves
    turns: list[dict[str, object]] = [{"role": m.role, "content": m.text(),
                                       "tool_calls": [c.arguments for c in m.tool_calls or ()]}
                                      for m in req.messages]
    await ex.json(200, an.encode_count(estimate_prompt_tokens(turns)))
