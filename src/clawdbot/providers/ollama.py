"""The Ollama adapter: canonical requests over Ollama's native API (/api/chat, /api/embed, /api/tags).

The native API rather than Ollama's OpenAI-compatible one, because only the native one takes
num_ctx, `think` and raw images, and reports token counts on every reply.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from typing import Any, TypeVar

import msgspec

from clawdbot.codecs import ollama as codec
from clawdbot.config.schema import Service
from clawdbot.core import accounting
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import GatewayError, UpstreamError
from clawdbot.core.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Usage,
)
from clawdbot.providers.base import Probe
from clawdbot.providers.http import UpstreamHTTP, auth_headers

T = TypeVar("T")

PROBE_TIMEOUT = 10.0  # seconds; a health check must not wait as long as a generation may


class OllamaProvider:
    kind = "ollama"

    def __init__(self, svc: Service) -> None:
        self.name = svc.name
        self.http = UpstreamHTTP(svc, auth_headers(svc))
        self.http.base = api_root(self.http.base)
        self.num_ctx = _num_ctx(svc)

    async def chat(self, req: ChatRequest, ctx: RequestContext) -> ChatResponse:
        # req.model is already the upstream name: the gateway rewrites it before calling us.
        ctx.upstream_model = req.model
        body = codec.encode_chat_request(msgspec.structs.replace(req, stream=False), req.model, self.num_ctx)
        deadline = self.http.deadline()
        resp = await self.http.open("POST", "/api/chat", ctx, body=body)
        await self.http.raise_for_status(resp, deadline)
        out = self._named(codec.decode_chat_response, await self.http.read_body(resp, deadline))
        _count(ctx, out.usage)
        return out

    async def stream(self, req: ChatRequest, ctx: RequestContext) -> AsyncGenerator[ChatChunk, None]:
        ctx.upstream_model = req.model
        body = codec.encode_chat_request(msgspec.structs.replace(req, stream=True), req.model, self.num_ctx)
        deadline = self.http.deadline()
        resp = await self.http.open("POST", "/api/chat", ctx, body=body)
        await self.http.raise_for_status(resp, deadline)
        state = _StreamState()
        lines = self.http.iter_lines(resp, deadline)
        try:
            async for line in lines:
                chunk = self._named(codec.decode_stream_line, line)
                # Lines after done:true are not Ollama's; reading on lets the connection be reused.
                if chunk is None or state.done:
                    continue
                state.apply(chunk)
                if chunk.usage is not None:
                    _count(ctx, chunk.usage)
                yield chunk
        finally:
            if isinstance(lines, AsyncGenerator):  # closes the response now, not at garbage collection
                await lines.aclose()
        if not state.done:
            raise UpstreamError(f"service {self.name!r}: stream ended early (no line with done:true)")

    async def embed(self, req: EmbeddingRequest, ctx: RequestContext) -> EmbeddingResponse:
        ctx.upstream_model = req.model
        deadline = self.http.deadline()
        resp = await self.http.open(
            "POST", "/api/embed", ctx, body=codec.encode_embed_request(req, req.model)
        )
        await self.http.raise_for_status(resp, deadline)
        out = self._named(codec.decode_embed_response, await self.http.read_body(resp, deadline))
        _count(ctx, out.usage)
        return out

    async def probe(self) -> Probe:
        started = time.perf_counter()
        try:
            timeout = min(PROBE_TIMEOUT, self.http.svc.timeouts.total)
            resp = await self.http.open("GET", "/api/tags", None, timeout=timeout)
            deadline = time.monotonic() + timeout
            await self.http.raise_for_status(resp, deadline)
            models = self._named(codec.decode_tags, await self.http.read_body(resp, deadline))
        except GatewayError as exc:
            return Probe(ok=False, latency_ms=_ms_since(started), detail=exc.message,
                         status=getattr(exc, "upstream_status", None))
        return Probe(ok=True, latency_ms=_ms_since(started), models=models)

    async def close(self) -> None:
        await self.http.close()

    def connections(self) -> dict[str, Any]:
        return self.http.connections()

    def _named(self, decode: Callable[[bytes], T], data: bytes) -> T:
        # The codec cannot know which service spoke; say so here, where the error is raised.
        try:
            return decode(data)
        except UpstreamError as exc:
            raise UpstreamError(f"service {self.name!r}: {exc.message}") from exc


class _StreamState:
    """What one stream has shown so far: whether it finished, and how many tool calls it made.

    Ollama reports a tool-call turn as done_reason "stop" on a final line that carries no calls, and
    old versions number every line's calls from 0; both are fixed here, in arrival order."""

    def __init__(self) -> None:
        self.done = False
        self.tool_calls = 0
        self.first = True

    def apply(self, chunk: ChatChunk) -> None:
        if self.first:
            chunk.role, self.first = "assistant", False
        for delta in chunk.tool_calls or ():
            delta.index, self.tool_calls = self.tool_calls, self.tool_calls + 1
        if chunk.finish_reason is not None:
            self.done = True
            if self.tool_calls and chunk.finish_reason == "stop":
                chunk.finish_reason = "tool_calls"


def api_root(base: str) -> str:
    """The server root. People paste Ollama's OpenAI-compatible URL (.../v1) or the API prefix
    (.../api); both name the same server, and every path here starts with /api."""
    for suffix in ("/v1", "/api"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def _num_ctx(svc: Service) -> int | None:
    value = svc.metadata.get("num_ctx")
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def _count(ctx: RequestContext, usage: Usage | None) -> None:
    if usage is not None:
        accounting.usage(ctx, usage.prompt_tokens, usage.completion_tokens)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
