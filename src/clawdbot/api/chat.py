"""POST /v1/chat/completions."""

from __future__ import annotations

from clawdbot.api.collect import collect
from clawdbot.api.exchange import Exchange
from clawdbot.api.relay import relay_canonical, relay_raw, trace_headers
from clawdbot.codecs import openai as oa
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import BadRequest
from clawdbot.pipeline.gateway import Gateway
from clawdbot.core.types import ChatResponse
from clawdbot.providers.base import RawResponse


async def chat_completions(ex: Exchange, gw: Gateway, body: bytes) -> None:
    wire, req = oa.parse_chat_request(body)
    limit = gw.config.server.max_messages
    if len(req.messages) > limit:
        raise BadRequest(f"Invalid 'messages': array too long. Expected an array with maximum length {limit}, "
                         f"but got an array with length {len(req.messages)} instead.", param="messages",
                         code="array_above_max_length")
    ctx = ex.ctx
    ctx.model, ctx.stream = req.model, req.stream
    if wire.metadata:  # routing inputs, when no header gave them
        ctx.priority = ctx.priority or wire.metadata.get("priority")
        ctx.tag = ctx.tag or wire.metadata.get("tag")
    # What a budget reservation counted (tenancy/metering.py); the client's own limit otherwise.
    # The relays cut a stream there, whether or not the upstream honoured the limit it was sent.
    budget_cap = ctx.completion_cap
    ctx.completion_cap = req.max_tokens if req.max_tokens is not None else budget_cap
    if budget_cap is not None and not req.stream:
        return await collect(ex, gw, body, req)  # a single body could not be cut at the cap
    result = await gw.forward_openai(body, req, ctx)
    trace_headers(ex)
    if isinstance(result, RawResponse):
        if result.chunks is None:
            ctx.mark_first_token()
            await ex.json(result.status, result.body or b"")
        else:
            await relay_raw(ex, result, req, body)
    elif isinstance(result, ChatResponse):
        _count(ctx, result)
        await ex.json(200, oa.encode_chat_response(result, req.model))
    else:
        await relay_canonical(ex, result, req, body)


def _count(ctx: RequestContext, r: ChatResponse) -> None:
    ctx.mark_first_token()
    if r.usage is not None:
        ctx.prompt_tokens, ctx.completion_tokens = r.usage.prompt_tokens, r.usage.completion_tokens
