"""Relaying canonical chunks to a client in its own dialect: one loop for every translated stream
(OpenAI Chat Completions from a non-OpenAI upstream or a plugin, Anthropic's events, Ollama's NDJSON,
legacy completions, Responses events). The dialect's codec supplies an `Encoder`; the loop counts
output events (one token each, as docs/limits.md counts a stream without usage), cuts the stream at
the request's completion cap (`ctx.completion_cap`), records the upstream's usage or the estimate,
and turns an error after the first byte into the dialect's in-stream error."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Protocol

from clawdbot.api.exchange import Exchange
from clawdbot.core import accounting
from clawdbot.core.errors import GatewayError
from clawdbot.core.types import ChatChunk, Usage

NO_CACHE = [(b"cache-control", b"no-cache")]


class Encoder(Protocol):
    content_type: bytes

    def opening(self, prompt_tokens: Callable[[], int]) -> bytes:
        """What goes out before the first chunk (Anthropic's message_start, Responses' created)."""

    def encode(self, chunk: ChatChunk) -> bytes: ...

    def closing(self, cut: bool, usage: Usage, reported: bool) -> bytes:
        """The end of a stream that ended well: `cut` when the gateway stopped it at the completion
        cap; `usage` as counted (the upstream's, or the estimate when `reported` is false)."""

    def failure(self, exc: GatewayError) -> bytes:
        """The dialect's in-stream error, the last thing sent."""


async def first(it: AsyncGenerator[ChatChunk, None]) -> ChatChunk | None:
    try:
        return await anext(it)
    except StopAsyncIteration:
        return None


async def relay(ex: Exchange, it: AsyncGenerator[ChatChunk, None], enc: Encoder,
                estimate: Callable[[], int]) -> None:
    """`estimate` gives the prompt's token estimate (the one metering reserved with)."""
    ctx = ex.ctx
    try:
        chunk = await first(it)  # an error before the first chunk is still an HTTP error
        await ex.start(200, enc.content_type, NO_CACHE)
        out = enc.opening(lambda: ctx.prompt_tokens or estimate())
        cut = False
        while chunk is not None:
            if not accounting.chunk(ctx, chunk):
                cut = True  # one more than the client (or its budget) allows; `finally` closes the upstream
                break
            out += enc.encode(chunk)
            if out:
                await ex.write(out)
                out = b""
            chunk = await first(it)
        reported = ctx.completion_tokens is not None and not cut
        accounting.unreported(ctx, estimate)
        ex.answered()
        await ex.end(out + enc.closing(cut, Usage(ctx.prompt_tokens or 0, ctx.completion_tokens or 0), reported))
    except GatewayError as exc:
        if not ex.started:
            raise
        ctx.error, ex.status = exc.message, exc.status  # logged as the stream's outcome; the client has a 200
        await ex.end(enc.failure(exc))
    finally:
        accounting.unreported(ctx, estimate)
        await it.aclose()
