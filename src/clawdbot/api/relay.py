"""Relaying a chat stream to an OpenAI client: the upstream's SSE events as they came (the fast
path), or canonical chunks encoded as OpenAI SSE (through api/encoded.py). Both count output events
(one token each, as docs/limits.md counts a stream without usage), mark the first token, cut the
stream at the request's completion cap (`ctx.completion_cap`), and end the response as soon as the
answer is complete."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncGenerator, Awaitable

from clawdbot.api import encoded
from clawdbot.api.exchange import Exchange
from clawdbot.api.http import SSE
from clawdbot.api.metered import prompt_estimate
from clawdbot.codecs import openai as oa
from clawdbot.codecs.openai_wire import ChunkProbe
from clawdbot.codecs.sse import EventSplitter, event_data
from clawdbot.core import accounting
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import GatewayError, UpstreamError
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, Usage
from clawdbot.pipeline.gateway import Gateway, attempts_header
from clawdbot.providers.base import RawResponse
from clawdbot.providers.http import drain
from clawdbot.routing.upstream import Upstream

DONE = b"data: [DONE]\n\n"
CHAT_PATH = "/v1/chat/completions"
CHAT_UPSTREAM_PATH = "/chat/completions"  # under an OpenAI service's API base (its /v1)


def forward(gw: Gateway, body: bytes, req: ChatRequest,
            ctx: RequestContext) -> Awaitable[RawResponse | ChatResponse | AsyncGenerator[ChatChunk, None]]:
    """An OpenAI chat request through the gateway: its bytes to OpenAI services (codecs/openai.py
    upstream_body makes the edits), the canonical `req` to the others. (The gateway's coroutine
    itself: no frame of its own on the hot path.)"""
    def rewrite(up: Upstream, model: str | None) -> bytes:
        return oa.upstream_body(body, req, model, up.limit_field)

    return gw.forward("openai", CHAT_UPSTREAM_PATH, rewrite, req, ctx)


def completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def trace_headers(ex: Exchange) -> None:
    """Which service answered, and every attempt on the way."""
    ctx = ex.ctx
    if ctx.service:
        ex.resp_headers.append((b"x-clawdbot-service", ctx.service.encode()))
        ex.resp_headers.append((b"x-clawdbot-attempts", attempts_header(ctx).encode()))


def plugin_headers(ex: Exchange, added: dict[str, str] | None = None) -> None:
    """Response headers plugins added (`add_header`), or those of a short-circuit answer."""
    added = ex.ctx.plugin_headers if added is None else added
    if added:
        ex.resp_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in added.items()]


def count_unreported(ctx: RequestContext, body: bytes) -> None:
    """An upstream that sent no usage, or a stream the gateway cut before it came: counted as
    docs/limits.md says (core/accounting.py), the prompt estimated as metering reserved it."""
    accounting.unreported(ctx, lambda: prompt_estimate(body, CHAT_PATH))


def _estimated_usage(ctx: RequestContext, body: bytes) -> Usage:
    count_unreported(ctx, body)
    return Usage(ctx.prompt_tokens or 0, ctx.chunks)


async def end_with_error(ex: Exchange, exc: GatewayError) -> None:
    ex.ctx.error = exc.message
    ex.ctx.error_code = exc.code
    ex.status = exc.status  # logged as the stream's outcome; the client already has a 200
    await ex.end(oa.encode_stream_error(exc.status, exc.type, exc.message, exc.code))


async def relay_raw(ex: Exchange, raw_response: RawResponse, req: ChatRequest, body: bytes) -> None:
    """Pass SSE bytes through, event by event, reading the usage on the way (and hiding the usage
    event the gateway asked for when the client did not)."""
    chunks = raw_response.chunks
    assert chunks is not None
    ctx = ex.ctx
    wants_usage = req.include_usage
    splitter = EventSplitter()
    last = b""  # the last relayed event: a cut's final chunk copies its id, created and model
    ended = cut = False
    await ex.start(200, SSE, [(b"cache-control", b"no-cache")])
    try:
        async for raw in chunks:
            out: list[bytes] = []
            done = False
            for ev in splitter.feed(raw):
                data = event_data(ev)
                if data == b"[DONE]":
                    done = True
                    break
                if data is not None:
                    if ctx.response_model is None:
                        named = oa.probe_stream_model(data, ctx.service)
                        accounting.answered_by(ctx, named.model)
                        probe: ChunkProbe = named
                    else:
                        probe = oa.probe_stream_data(data, ctx.service)
                    if probe.output() and not accounting.output(ctx):  # over the client's (or budget's) cap
                        cut = True
                        break
                    if probe.usage is not None:
                        accounting.usage(ctx, probe.usage.prompt_tokens, probe.usage.completion_tokens)
                        if not probe.choices and not wants_usage:
                            continue  # the usage event the gateway asked for on its own account
                    last = data
                out.append(ev)
                out.append(b"\n\n")
            if done or cut:
                if cut or (wants_usage and ctx.completion_tokens is None):  # the upstream's usage never came
                    usage = _estimated_usage(ctx, body)
                    out.append(oa.closing_events(last, "length" if cut else None, usage if wants_usage else None))
                out.append(DONE)
                count_unreported(ctx, body)  # the usage final, then the spend journaled, then the last bytes
                ex.answered()
                await ex.end(b"".join(out))  # the client has its answer now: not after the upstream ends
                ended = True
                break
            if out:
                await ex.write(b"".join(out))
        if not ended:
            raise UpstreamError(f"service {ctx.service!r} ended the stream early (no [DONE])")
    except GatewayError as exc:
        await end_with_error(ex, exc)
    finally:
        count_unreported(ctx, body)
        if not ended:  # failed, or the client went away: the connection is not reusable
            await chunks.aclose()
    if cut:
        await chunks.aclose()  # drops the connection: the upstream stops generating
    elif ended:
        await drain(chunks, raw_response.complete)


async def relay_canonical(ex: Exchange, it: AsyncGenerator[ChatChunk, None], req: ChatRequest, body: bytes) -> None:
    kind = oa.LegacyChunks if req.legacy_functions else oa.ChunkEncoder
    enc = kind(completion_id(), req.model, int(time.time()), req.include_usage)
    await encoded.relay(ex, it, enc, lambda: prompt_estimate(body, CHAT_PATH))
