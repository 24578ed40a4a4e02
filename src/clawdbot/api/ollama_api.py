"""Ollama's native API (/api/chat, /api/generate, /api/embed, /api/embeddings, /api/tags,
/api/show, /api/ps, /api/version), so that an Ollama app pointed at clawdbot's port sees every
model the gateway routes, whatever serves it. Through the same pipeline as /v1 (metering before
dispatch: api/metered.py; plugins; routing); replies as Ollama writes them, streams as NDJSON with
`done`, `done_reason` and the token counts on the last line. Errors: `{"error": "..."}`."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import msgspec

from clawdbot.api import canonical
from clawdbot.api.exchange import Exchange
from clawdbot.api.relay import first
from clawdbot.codecs import ollama as ol
from clawdbot.codecs import ollama_inbound as oi
from clawdbot.core import accounting
from clawdbot.core.errors import GatewayError
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, ToolCallDelta, Usage
from clawdbot.pipeline.policy import Pipeline
from clawdbot.tenancy.costs import estimate_prompt_tokens

NDJSON = b"application/x-ndjson"
_DONE = {"stop": "stop", "length": "length", "tool_calls": "stop"}


async def chat(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    await _serve(ex, pl, oi.parse_chat(body), generate=False)


async def generate(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    req, _ = oi.parse_generate(body)
    await _serve(ex, pl, req, generate=True)


async def _serve(ex: Exchange, pl: Pipeline, req: ChatRequest, generate: bool) -> None:
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
                                                _final(resp.finish_reason, resp.usage)))
        else:  # under the name the client asked for
            await ex.json(200, ol.encode_chat_response(msgspec.structs.replace(resp, model=req.model)))

    await canonical.answer(ex, pl, req, whole, lambda it: _relay(ex, it, req, generate))


def _final(finish: str | None, usage: Usage | None) -> dict[str, Any]:
    out: dict[str, Any] = {"done_reason": _DONE.get(finish or "stop", "stop")}
    if usage is not None:
        out |= {"prompt_eval_count": usage.prompt_tokens, "eval_count": usage.completion_tokens}
    return out


def _estimate(req: ChatRequest) -> int:
    return estimate_prompt_tokens([{"role": m.role, "content": m.text()} for m in req.messages])


async def _relay(ex: Exchange, it: AsyncGenerator[ChatChunk, None], req: ChatRequest, generate: bool) -> None:
    """NDJSON lines: text and thinking as they come; tool calls whole (Ollama sends each call
    complete in one line: the deltas are merged until the answer's end); the last line `done`."""
    ctx = ex.ctx
    calls: dict[int, ToolCallDelta] = {}
    finish: str | None = None
    usage: Usage | None = None
    try:
        chunk = await first(it)
        await ex.start(200, NDJSON, [(b"cache-control", b"no-cache")])
        while chunk is not None:
            if (chunk.content or chunk.tool_calls or chunk.reasoning) and not accounting.output(ctx):
                finish = "length"  # one more than the client (or its budget) allows
                break
            if chunk.usage is not None:
                usage = chunk.usage
                accounting.usage(ctx, usage.prompt_tokens, usage.completion_tokens)
            for d in chunk.tool_calls or ():
                held = calls.get(d.index)
                calls[d.index] = d if held is None else ToolCallDelta(
                    d.index, held.id or d.id, held.name or d.name, (held.arguments or "") + (d.arguments or ""))
            if chunk.finish_reason is not None:
                finish = chunk.finish_reason
            if chunk.content or chunk.reasoning:
                text = ChatChunk(content=chunk.content, reasoning=chunk.reasoning)
                await ex.write(oi.generate_line(req.model, text.content or "", text.reasoning, False) + b"\n"
                               if generate else ol.encode_stream_chunk(text, req.model))
            chunk = await first(it)
        accounting.unreported(ctx, lambda: _estimate(req))
        if usage is None or finish == "length":
            usage = Usage(ctx.prompt_tokens or 0, ctx.completion_tokens or 0)
        tail = b""
        if calls and not generate:
            tail = ol.encode_stream_chunk(ChatChunk(tool_calls=[calls[i] for i in sorted(calls)]), req.model)
        if generate:
            tail += oi.generate_line(req.model, "", None, True, _final(finish, usage)) + b"\n"
        else:
            tail += ol.encode_stream_chunk(ChatChunk(finish_reason=finish or "stop", usage=usage), req.model)
        await ex.end(tail)
    except GatewayError as exc:
        if not ex.started:
            raise
        ctx.error, ex.status = exc.message, exc.status
        await ex.end(oi.encode_error(exc.message) + b"\n")
    finally:
        accounting.unreported(ctx, lambda: _estimate(req))
        await it.aclose()


# ---- embeddings and the model list ----------------------------------------------------------------


async def embed(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    req = oi.parse_embed(body)
    ex.ctx.model = req.model
    resp = await pl.gateway.embed(req, ex.ctx)
    accounting.answered(ex.ctx, resp.usage.prompt_tokens, 0)
    await ex.json(200, oi.encode_json({"model": req.model, "embeddings": resp.vectors,
                                   "prompt_eval_count": resp.usage.prompt_tokens}))


async def embeddings(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    req = oi.parse_embeddings(body)
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
    name = oi.parse_model(body)
    pl.gateway.resolver.resolve(name)  # 404 for a model nobody serves
    info = {m.id: m.description for m in pl.gateway.resolver.models()}
    await ex.json(200, oi.encode_show(name, info.get(name)))


async def version(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    await ex.json(200, oi.encode_version())
