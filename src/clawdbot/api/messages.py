"""POST /v1/messages (Anthropic's dialect) and /v1/messages/count_tokens, through the same pipeline
as /v1/chat/completions: metering admitted the request before dispatch (api/metered.py reads its
head), plugins see canonical requests and answers, the gateway routes to any service type, and the
answer goes back as Anthropic's message object or its SSE events (codecs/anthropic*.py)."""

from __future__ import annotations

from clawdbot.api import canonical, encoded
from clawdbot.api.exchange import Exchange
from clawdbot.api.metered import read_head
from clawdbot.codecs import anthropic as an
from clawdbot.codecs.anthropic_stream import StreamEncoder
from clawdbot.core.errors import BadRequest
from clawdbot.core.types import ChatResponse
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

    enc = StreamEncoder(req.model)
    await canonical.answer(ex, pl, req, whole, lambda it: encoded.relay(ex, it, enc, lambda: _estimate(body)))


def _estimate(body: bytes) -> int:
    try:
        return read_head(body, PATH).prompt_estimate()
    except BadRequest:
        return 0


async def count_tokens(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    """An estimate (the gateway's own: characters / 4 plus per-message overhead, as metering
    reserves with); no upstream is asked. The model must be one the gateway serves."""
    req = an.parse_count_tokens_request(body)
    pl.gateway.resolver.resolve(req.model)  # ModelNotFound (404) for a model nobody serves
    turns: list[dict[str, object]] = [{"role": m.role, "content": m.text(),
                                       "tool_calls": [c.arguments for c in m.tool_calls or ()]}
                                      for m in req.messages]
    await ex.json(200, an.encode_count(estimate_prompt_tokens(turns)))
