"""POST /v1/chat/completions."""

from __future__ import annotations

import time

import msgspec

from clawdbot.api.collect import collect
from clawdbot.api.exchange import Exchange
from clawdbot.api.http import SSE
from clawdbot.api.integral import parse_lax
from clawdbot.api.relay import completion_id, forward, plugin_headers, relay_canonical, relay_raw, trace_headers
from clawdbot.api.request_bounds import check_output_limit
from clawdbot.codecs import openai as oa
from clawdbot.core import accounting
from clawdbot.core.errors import BadRequest, GatewayError
from clawdbot.core.types import ChatRequest, ChatResponse
from clawdbot.pipeline.plugins import Run, replayed
from clawdbot.pipeline.policy import Pipeline
from clawdbot.plugins.base import Answer
from clawdbot.providers.base import RawResponse


async def chat_completions(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    (wire, req), body = parse_lax(oa.parse_chat_request, body)
    check_output_limit(wire.max_tokens, "max_tokens")  # both: the codec checks only the one that wins
    check_output_limit(wire.max_completion_tokens, "max_completion_tokens")
    limit = pl.gateway.config.server.max_messages
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
    if pl.agent is not None and b"x-clawdbot-tools" in (ctx.headers or ()):
        return await _agent(ex, pl, req)
    run = pl.plugins(ctx, req.model)
    if run is not None:
        try:
            return await _with_plugins(ex, pl, body, req, run, budget_cap is not None)
        except GatewayError as exc:
            await pl.failed(run, exc)
            raise
    if budget_cap is not None and not req.stream:
        return await _capped(ex, pl, body, req)
    await _answer(ex, pl, body, req)


async def _agent(ex: Exchange, pl: Pipeline, req: ChatRequest) -> None:
    """X-Clawdbot-Tools: the MCP tool loop runs the model's tool calls (mcp/agent_http.py, docs/mcp.md)."""
    await pl.agent.chat_completions(ex, req, ex.ctx.headers[b"x-clawdbot-tools"])


async def _capped(ex: Exchange, pl: Pipeline, body: bytes, req: ChatRequest) -> None:
    """A non-stream request a budget reserved a completion cap for. The upstream is sent the cap as
    its output limit (every common server honours it) and the answer checked; a service caught
    answering more is from then on asked for a stream the gateway cuts at the cap (api/collect.py):
    the overspend bound of docs/limits.md then holds whatever the upstream does."""
    ctx, gw = ex.ctx, pl.gateway
    cap = ctx.completion_cap
    assert cap is not None
    if req.max_tokens is None:  # the client set no limit: the one its budget reserved goes upstream
        body = oa.rewrite_request(body, None, False, limit=cap)
        req = msgspec.structs.replace(req, max_tokens=cap, limit_field="max_tokens")
    if not gw.caps_trusted(req.model):
        resp = await collect(ex, gw, body, req)
        await ex.json(200, oa.encode_answer(resp, req))
        return
    await _answer(ex, pl, body, req)
    got = ctx.completion_tokens
    if got is not None and got > cap and ctx.service is not None:
        gw.cap_ignored(ctx.service, cap, got)


async def _answer(ex: Exchange, pl: Pipeline, body: bytes, req: ChatRequest) -> None:
    """The gateway's answer relayed as it comes: bytes through when the upstream speaks OpenAI."""
    ctx = ex.ctx
    result = await forward(pl.gateway, body, req, ctx)
    trace_headers(ex)
    if isinstance(result, RawResponse):
        if result.chunks is None:
            accounting.answered(ctx)
            await ex.json(result.status, result.body or b"")
        else:
            await relay_raw(ex, result, req, body)
    elif isinstance(result, ChatResponse):
        _whole(ex, result)
        await ex.json(200, oa.encode_answer(result, req))
    else:
        await relay_canonical(ex, result, req, body)


def _whole(ex: Exchange, r: ChatResponse) -> None:
    u = r.usage
    accounting.answered(ex.ctx, u.prompt_tokens if u else None, u.completion_tokens if u else None)


async def _with_plugins(ex: Exchange, pl: Pipeline, body: bytes, req: ChatRequest, run: Run, capped: bool) -> None:
    """The request through its plugins: a pre hook may change it or answer it; plugins that read the
    answer get canonical chunks (no byte pass-through); the others leave the fast path as it is."""
    ctx = ex.ctx
    changed, answer = await run.pre(req)
    plugin_headers(ex)
    if answer is not None:
        return await _short_circuit(ex, run, answer, req)
    if changed is not req:  # what the upstream gets is the changed request
        body = oa.encode_chat_request(changed, req.limit_field or "max_tokens")
        changed = msgspec.structs.replace(changed, limit_field=req.limit_field)
    if not run.reads_answer:
        if capped and not req.stream:
            return await _capped(ex, pl, body, changed)
        return await _answer(ex, pl, body, changed)
    gw = pl.gateway
    if req.stream:
        it = await gw.open_stream(changed, ctx)
        trace_headers(ex)
        return await relay_canonical(ex, run.stream(it), req, body)
    raw: bytes | None = None
    if capped and not gw.caps_trusted(req.model):
        resp = await collect(ex, gw, body, changed)
    else:
        cap = ctx.completion_cap
        if capped and changed.max_tokens is None and cap is not None:
            body = oa.rewrite_request(body, None, False, limit=cap)
            changed = msgspec.structs.replace(changed, max_tokens=cap, limit_field="max_tokens")
        resp, raw = await _whole_answer(ex, pl, body, changed)
        if capped and cap is not None and (got := ctx.completion_tokens) is not None and got > cap \
                and ctx.service is not None:
            gw.cap_ignored(ctx.service, cap, got)
    out = await run.post(resp)
    if raw is not None and out is resp:  # no plugin changed it: the upstream's bytes, as on the fast path
        await ex.json(200, raw)
    else:
        await ex.json(200, oa.encode_answer(out, req))


async def _whole_answer(ex: Exchange, pl: Pipeline, body: bytes, req: ChatRequest) -> tuple[ChatResponse, bytes | None]:
    """A whole answer for plugins to read: from an OpenAI upstream the body is forwarded as it is
    and the answer decoded from the reply, which is kept (second value) when the decoded answer
    holds all of its text (codecs/openai.py decode_whole)."""
    ctx = ex.ctx
    result = await forward(pl.gateway, body, req, ctx)
    trace_headers(ex)
    if isinstance(result, ChatResponse):
        _whole(ex, result)
        return result, None
    assert isinstance(result, RawResponse) and result.chunks is None  # not a stream: a whole body
    data = result.body or b""
    resp, exact = oa.decode_whole(data)
    accounting.answered(ctx)  # its usage was counted as the body came (providers/openai_http.py)
    return resp, (data if exact and result.status == 200 else None)


async def _short_circuit(ex: Exchange, run: Run, answer: Answer, req: ChatRequest) -> None:
    """A plugin answered (a cache hit, a canned reply): in the client's dialect, streamed if it asked."""
    ctx = ex.ctx
    ctx.cost_free = answer.cost_free
    ctx.service = None
    plugin_headers(ex, answer.headers)
    resp = answer.response
    if not req.stream:
        resp = await run.post(resp)
        u = resp.usage
        accounting.answered(ctx, u.prompt_tokens if u else None, u.completion_tokens if u else None)
        await ex.json(200, oa.encode_answer(resp, req))
        return
    enc = oa.ChunkEncoder(completion_id(), req.model, int(time.time()), req.include_usage)
    out = []
    async for c in run.stream(replayed(resp)):
        if c.content or c.tool_calls or c.reasoning:
            accounting.output(ctx)
        if c.usage is not None:
            accounting.usage(ctx, c.usage.prompt_tokens, c.usage.completion_tokens)
        out.append(enc.encode(c))
    out.append(enc.done())
    await ex.start(200, SSE, [(b"cache-control", b"no-cache")])
    ex.answered()
    await ex.end(b"".join(out))

