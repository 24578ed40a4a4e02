"""POST /v1/completions, OpenAI's legacy text completions, for old clients: the prompt answered as a
chat turn through the same pipeline as /v1/chat/completions (codecs/openai_completions.py says
what is mapped and what is refused)."""

from __future__ import annotations

import time

from clawdbot.api import canonical, encoded
from clawdbot.api.exchange import Exchange
from clawdbot.api.integral import parse_lax
from clawdbot.api.request_bounds import check_output_limit
from clawdbot.codecs import openai_completions as oc
from clawdbot.core.types import ChatResponse
from clawdbot.pipeline.policy import Pipeline
from clawdbot.tenancy.costs import estimate_text_tokens


async def completions(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    req, _ = parse_lax(oc.parse, body)
    check_output_limit(req.max_tokens, "max_tokens")
    ctx = ex.ctx
    ctx.model, ctx.stream = req.model, req.stream
    ctx.completion_cap = req.max_tokens  # always set (16 by default): a budget reserved the same

    async def whole(resp: ChatResponse) -> None:
        await ex.json(200, oc.encode_response(resp, req.model, int(time.time())))

    def estimate() -> int:
        return estimate_text_tokens(req.messages[0].text())

    enc = oc.StreamEncoder(req.model, int(time.time()), req.include_usage)
    await canonical.answer(ex, pl, req, whole, lambda it: encoded.relay(ex, it, enc, estimate))
