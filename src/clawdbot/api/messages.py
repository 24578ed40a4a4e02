"""POST /v1/messages (Anthropic's dialect) and /v1/messages/count_tokens, through the same pipeline
as /v1/chat/completions: metering admitted the request before dispatch (api/metered.py reads its
head), plugins see canonical requests and answers, the gateway routes to any service type, and the
answer goes back as Anthropic's message object or its SSE events (codecs/anthropic*.py).

With no plugin in scope and a `type: anthropic` service in the route, the bytes go through instead
(api/messages_raw.py), so what the canonical types cannot hold (prompt caching, signed thinking,
documents, server tools, ...) reaches the service; a request that holds such content is refused
(400) only where it would need translating. A plugin in scope always sees the canonical request,
and the canonical request is what goes upstream: it cannot check what it never saw."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from clawdbot.api import canonical, encoded, messages_raw
from clawdbot.api.exchange import Exchange
from clawdbot.api.integral import parse_lax
from clawdbot.api.metered import prompt_estimate
from clawdbot.api.request_bounds import check_output_limit
from clawdbot.codecs import anthropic as an
from clawdbot.codecs import anthropic_raw as ar
from clawdbot.codecs.anthropic_stream import StreamEncoder
from clawdbot.core.errors import BadRequest
from clawdbot.core.types import ChatChunk, ChatResponse
from clawdbot.pipeline.policy import Pipeline
from clawdbot.tenancy.costs import estimate_prompt_tokens

PATH = "/v1/messages"


async def messages(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    refused: BadRequest | None = None
    try:
        req, body = parse_lax(an.parse_messages_request, body)
        count = len(req.messages)
    except BadRequest as exc:  # perhaps only the canonical types cannot hold it
        head = ar.read_head(body)
        if head is None:
            raise
        req, count, refused = head.request(), len(head.messages), exc
    check_output_limit(req.max_tokens, "max_tokens")
    ctx = ex.ctx
    ctx.model, ctx.stream = req.model, req.stream
    ctx.completion_cap = req.max_tokens  # required in this dialect; a budget reserved the same
    canonical.check_count(pl, count)
    run = pl.plugins(ctx, req.model)
    fast = run is None and pl.gateway.forwards(req.model, "anthropic")
    if refused is not None and not fast:
        raise refused

    async def whole(resp: ChatResponse) -> None:
        await ex.json(200, an.encode_message_response(resp, req.model))

    def estimate() -> int:
        return prompt_estimate(body, PATH)

    enc = StreamEncoder(req.model)

    async def relay(it: AsyncGenerator[ChatChunk, None]) -> None:
        await encoded.relay(ex, it, enc, estimate)

    if fast:
        return await messages_raw.answer(ex, pl, body, req, refused, whole, relay, estimate)
    await canonical.answer_with(ex, pl, req, run, whole, relay)


async def count_tokens(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    """An estimate (the gateway's own: characters / 4 plus per-message overhead, as metering
    reserves with); no upstream is asked. The model must be one the gateway serves."""
    req, _ = parse_lax(an.parse_count_tokens_request, body)
    pl.gateway.resolver.resolve(req.model)  # ModelNotFound (404) for a model nobody serves
    turns: list[dict[str, object]] = [{"role": m.role, "content": m.text(),
                                       "tool_calls": [c.arguments for c in m.tool_calls or ()]}
                                      for m in req.messages]
    await ex.json(200, an.encode_count(estimate_prompt_tokens(turns)))
