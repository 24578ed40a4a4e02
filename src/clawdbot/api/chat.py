"""POST /v1/chat/completions."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncGenerator

from clawdbot.api.exchange import Exchange
from clawdbot.api.http import SSE
from clawdbot.codecs import openai as oa
from clawdbot.codecs.sse import EventSplitter, event_data
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import BadRequest, GatewayError, UpstreamError
from clawdbot.core.gateway import Gateway, attempts_header
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse
from clawdbot.providers.base import RawResponse


def completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


async def chat_completions(ex: Exchange, gw: Gateway, body: bytes) -> None:
    wire, req = oa.parse_chat_request(body)
    limit = gw.config.server.max_messages
    if len(req.messages) > limit:
        raise BadRequest(f"Invalid 'messages': array too long. Expected an array with maximum length {limit}, "
                         f"but got an array with length {len(req.messages)} instead.", param="messages",
                         code="array_above_max_length")
    ex.ctx.model, ex.ctx.stream = req.model, req.stream
    if wire.metadata:  # routing inputs, when no header gave them
        ex.ctx.priority = ex.ctx.priority or wire.metadata.get("priority")
        ex.ctx.tag = ex.ctx.tag or wire.metadata.get("tag")
    result = await gw.forward_openai(body, req, ex.ctx)
    if ex.ctx.service:
        ex.resp_headers.append((b"x-clawdbot-service", ex.ctx.service.encode()))
        ex.resp_headers.append((b"x-clawdbot-attempts", attempts_header(ex.ctx).encode()))
    if isinstance(result, RawResponse):
        if result.chunks is None:
            ex.ctx.mark_first_token()
            await ex.json(result.status, result.body or b"")
        else:
            await _relay_raw(ex, result.chunks, req.include_usage)
    elif isinstance(result, ChatResponse):
        _count(ex.ctx, result)
        await ex.json(200, oa.encode_chat_response(result, req.model))
    else:
        await _relay_canonical(ex, result, req)


def _count(ctx: RequestContext, r: ChatResponse) -> None:
    ctx.mark_first_token()
    if r.usage is not None:
        ctx.prompt_tokens, ctx.completion_tokens = r.usage.prompt_tokens, r.usage.completion_tokens


async def _first(it: AsyncGenerator[ChatChunk, None]) -> ChatChunk | None:
    try:
        return await anext(it)
    except StopAsyncIteration:
        return None


async def _relay_canonical(ex: Exchange, it: AsyncGenerator[ChatChunk, None], req: ChatRequest) -> None:
    ctx = ex.ctx
    try:
        # Errors before the first chunk are still real HTTP errors (status, JSON body).
        chunk = await _first(it)
        enc = oa.ChunkEncoder(completion_id(), req.model, int(time.time()), req.include_usage)
        await ex.start(200, SSE, [(b"cache-control", b"no-cache")])
        while chunk is not None:
            if chunk.content or chunk.tool_calls or chunk.reasoning:
                ctx.mark_first_token()
                ctx.chunks += 1
            if chunk.usage is not None:
                ctx.prompt_tokens = chunk.usage.prompt_tokens
                ctx.completion_tokens = chunk.usage.completion_tokens
            data = enc.encode(chunk)
            if data:
                await ex.write(data)
            chunk = await _first(it)
        await ex.end(enc.done())
    except GatewayError as exc:
        if not ex.started:
            raise
        await _end_with_error(ex, exc)
    finally:
        await it.aclose()


async def _end_with_error(ex: Exchange, exc: GatewayError) -> None:
    ex.ctx.error = exc.message
    ex.status = exc.status  # logged as the stream's outcome; the client already has a 200
    await ex.end(oa.encode_stream_error(exc.status, exc.type, exc.message, exc.code))


async def _relay_raw(ex: Exchange, chunks: AsyncGenerator[bytes, None], client_wants_usage: bool) -> None:
    """Pass SSE bytes through, event by event, reading the usage on the way (and hiding the usage
    event the gateway asked for when the client did not)."""
    ctx = ex.ctx
    splitter = EventSplitter()
    done = False
    await ex.start(200, SSE, [(b"cache-control", b"no-cache")])
    try:
        async for raw in chunks:
            out = []
            for ev in splitter.feed(raw):
                data = event_data(ev)
                if data == b"[DONE]":
                    done = True
                elif data is not None:
                    probe = oa.probe_stream_data(data, ctx.service)
                    if probe.choices:
                        ctx.chunks += 1
                    if probe.usage is not None:
                        ctx.prompt_tokens = probe.usage.prompt_tokens
                        ctx.completion_tokens = probe.usage.completion_tokens
                        if not probe.choices and not client_wants_usage:
                            continue  # the usage event the gateway asked for on its own account
                    if ctx.first_token_at is None and b'"content":"' in ev and b'"content":""' not in ev:
                        ctx.mark_first_token()
                out.append(ev)
                out.append(b"\n\n")
            if out:
                await ex.write(b"".join(out))
        if not done:
            raise UpstreamError(f"service {ctx.service!r} ended the stream early (no [DONE])")
        await ex.end()
    except GatewayError as exc:
        await _end_with_error(ex, exc)
    except asyncio.CancelledError:
        await chunks.aclose()
        raise
