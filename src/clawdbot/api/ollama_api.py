"""Ollama's native API (/api/chat, /api/generate, /api/embed, /api/embeddings, /api/tags,
/api/show, /api/ps, /api/version), so that an Ollama app pointed at clawdbot's port sees every
model the gateway routes, whatever serves it. Through the same pipeline as /v1 (metering before
dispatch: api/metered.py; plugins; routing); replies as Ollama writes them, streams as NDJSON with
`done`, `done_reason` and the token counts on the last line. Errors: `{"error": "..."}`."""

from __future__ import annotations

import msgspec

from clawdbot.api import canonical, encoded
from clawdbot.api.exchange import Exchange
from clawdbot.api.integral import parse_lax
from clawdbot.api.request_bounds import check_dimensions, check_output_limit
from clawdbot.codecs import ollama as ol
from clawdbot.codecs import ollama_inbound as oi
from clawdbot.codecs.text_turns import PROMPT_STRING_TYPES
from clawdbot.core import accounting
from clawdbot.core.types import ChatRequest, ChatResponse
from clawdbot.pipeline.policy import Pipeline
from clawdbot.tenancy.costs import estimate_prompt_tokens


async def chat(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    await _serve(ex, pl, parse_lax(oi.parse_chat, body)[0], generate=False)


async def generate(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    (req, _), _ = parse_lax(oi.parse_generate, body)
    await _serve(ex, pl, req, generate=True)


async def _serve(ex: Exchange, pl: Pipeline, req: ChatRequest, generate: bool) -> None:
    check_output_limit(req.max_tokens, "options.num_predict")
    ctx = ex.ctx
    ctx.model, ctx.stream = req.model, req.stream
    budget_cap = ctx.completion_cap
    ctx.completion_cap = req.max_tokens if req.max_tokens is not None else budget_cap
    if req.max_tokens is None and budget_cap is not None:  # the limit a budget reserved goes upstream
        req = msgspec.structs.replace(req, max_tokens=budget_cap)

    async def whole(resp: ChatResponse) -> None:
        m = resp.message
        if generate:
            await ex.json(200, oi.generate_line(req.model, m.text(), m.reasoning, True,
                                                oi.final_fields(resp.finish_reason, resp.usage)))
        else:  # under the name the client asked for
            await ex.json(200, ol.encode_chat_response(msgspec.structs.replace(resp, model=req.model)))

    enc = oi.NDJSONEncoder(req.model, generate)
    await canonical.answer(ex, pl, req, whole, lambda it: encoded.relay(ex, it, enc, lambda: _estimate(req)))


def _estimate(req: ChatRequest) -> int:
    return estimate_prompt_tokens([{"role": m.role, "content": m.text()} for m in req.messages])


# ---- embeddings and the model list ----------------------------------------------------------------


async def embed(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    req, _ = parse_lax(oi.parse_embed, body)
    check_dimensions(req.dimensions)
    ex.ctx.model = req.model
    resp = await pl.gateway.embed(req, ex.ctx)
    accounting.answered(ex.ctx, resp.usage.prompt_tokens, 0)
    await ex.json(200, oi.encode_json({"model": req.model, "embeddings": resp.vectors,
                                   "prompt_eval_count": resp.usage.prompt_tokens}))


async def embeddings(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    req, _ = parse_lax(oi.parse_embeddings, body)
    ex.ctx.model = req.model
    resp = await pl.gateway.embed(req, ex.ctx)
    accounting.answered(ex.ctx, resp.usage.prompt_tokens, 0)
    await ex.json(200, oi.encode_json({"embedding": resp.vectors[0] if resp.vectors else []}))


def _models(pl: Pipeline, ex: Exchange) -> list[str]:
    p = ex.ctx.identity
    names = pl.gateway.resolver.names()
    may = getattr(p, "may_use", None)
    return [n for n in names if may is None or may(n)]


async def tags(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    # says a clawdbot answered: a gateway pointed at this one speaks OpenAI to it (config/autodetect.py)
    ex.resp_headers.append((b"x-clawdbot-gateway", b"1"))
    await ex.json(200, oi.encode_tags(_models(pl, ex)))


async def ps(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    await ex.json(200, oi.encode_ps(_models(pl, ex)))


async def show(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    name, _ = parse_lax(oi.parse_model, body)
    resolver = pl.gateway.resolver
    targets = resolver.resolve(name)  # 404 for a model nobody serves
    info = {m.id: m.description for m in resolver.models()}
    tools = any(t.service not in resolver.services or resolver.services[t.service].type not in PROMPT_STRING_TYPES
                for t in targets)
    await ex.json(200, oi.encode_show(name, info.get(name), tools))


async def version(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    await ex.json(200, oi.encode_version())
