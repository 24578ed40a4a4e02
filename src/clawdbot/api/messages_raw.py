"""/v1/messages to services that speak Anthropic, bytes through: the client's request goes upstream
as it came (codecs/anthropic_raw.py: only the model name, and a budget's lower cap, rewritten), and
the answer comes back as the upstream sent it, a whole body or its SSE events one by one, read on
the way for output (the completion cap cuts the stream: the open block closed, then message_delta
with stop reason max_tokens and message_stop), usage (the prompt counts the prompt cache's tokens),
the end and an upstream `error` event. Prompt caching, signed thinking, documents, citations,
server tools and the rest reach the service untouched. A deployment of another type in the same
route is answered through the canonical types (pipeline/gateway.py `forward`)."""

from __future__ import annotations

from collections.abc import Callable

from clawdbot.api import canonical
from clawdbot.api.encoded import NO_CACHE
from clawdbot.api.exchange import Exchange
from clawdbot.api.http import SSE
from clawdbot.api.relay import trace_headers
from clawdbot.codecs import anthropic_raw as ar
from clawdbot.codecs.anthropic_stream import StreamEncoder
from clawdbot.codecs.sse import EventSplitter, event_data
from clawdbot.core import accounting
from clawdbot.core.errors import GatewayError, UpstreamError
from clawdbot.core.types import ChatRequest, ChatResponse
from clawdbot.pipeline.policy import Pipeline
from clawdbot.providers.base import RawResponse
from clawdbot.providers.http import drain
from clawdbot.routing.upstream import Upstream

UPSTREAM_PATH = "/messages"  # under the service's API base (its /v1)


async def answer(ex: Exchange, pl: Pipeline, body: bytes, req: ChatRequest, untranslatable: GatewayError | None,
                 whole: canonical.Whole, relay_canonical: canonical.Relay, estimate: Callable[[], int]) -> None:
    """`whole` and `relay_canonical` answer from a deployment of another dialect; `untranslatable`:
    the request holds what the canonical types cannot (only Anthropic services may take it)."""
    ctx = ex.ctx
    cap = ctx.completion_cap
    lower = cap if cap is not None and req.max_tokens is not None and cap < req.max_tokens else None

    def rewrite(up: Upstream, model: str | None) -> bytes:
        return ar.rewrite_request(body, model, lower)

    result = await pl.gateway.forward("anthropic", UPSTREAM_PATH, rewrite, req, ctx, untranslatable)
    trace_headers(ex)
    if isinstance(result, RawResponse):
        if result.chunks is None:
            accounting.answered(ctx)  # its usage was counted as the body came (providers/http.py forward)
            await ex.json(result.status, result.body or b"")
        else:
            await relay(ex, result, estimate)
    elif isinstance(result, ChatResponse):
        await canonical.respond(ex, result, whole)
    else:
        await relay_canonical(result)


async def relay(ex: Exchange, raw: RawResponse, estimate: Callable[[], int]) -> None:
    chunks = raw.chunks
    assert chunks is not None
    ctx = ex.ctx
    splitter, reader = EventSplitter(), ar.EventReader()
    kind = ar.OTHER
    cut = False
    await ex.start(200, SSE, NO_CACHE)
    try:
        async for data in chunks:
            out: list[bytes] = []
            for ev in splitter.feed(data):
                payload = event_data(ev)
                kind = ar.OTHER if payload is None else reader.read(payload, ctx.service)
                if kind == ar.OUTPUT and not accounting.output(ctx):  # over the client's (or budget's) cap
                    cut = True
                    out.append(reader.cut(ctx.chunks))
                    break
                out.append(ev)
                out.append(b"\n\n")
                if kind >= ar.STOP:
                    break
            if cut or kind >= ar.STOP:
                if kind == ar.ERROR:  # the upstream's own error event reached the client as it came
                    ctx.error, ex.status = reader.error, 502
                else:  # the usage final, then the spend journaled, then the last bytes
                    _count(ex, reader, kind == ar.STOP and not cut, estimate)
                    ex.answered()
                await ex.end(b"".join(out))  # the client has its answer now: not after the upstream ends
                break
            if out:
                await ex.write(b"".join(out))
        else:
            raise UpstreamError(f"service {ctx.service!r} ended the stream early (no message_stop)")
    except GatewayError as exc:
        ctx.error, ex.status = exc.message, exc.status  # logged as the stream's outcome; the client has a 200
        await ex.end(StreamEncoder.error(exc.status, exc.message))
    finally:
        complete = kind == ar.STOP and not cut
        _count(ex, reader, complete, estimate)
        if not complete:  # cut (the upstream stops generating), failed, or the client went away
            await chunks.aclose()
    if complete:
        await drain(chunks, raw.complete)


def _count(ex: Exchange, reader: ar.EventReader, complete: bool, estimate: Callable[[], int]) -> None:
    ctx = ex.ctx
    accounting.answered_by(ctx, reader.model)
    if reader.prompt is not None:
        if complete and reader.output is not None:
            accounting.usage(ctx, reader.prompt, reader.output)
        else:
            accounting.prompt(ctx, reader.prompt)
    accounting.unreported(ctx, estimate)
