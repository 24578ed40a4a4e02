"""Any OpenAI-compatible server (OpenAI, vLLM, llama.cpp's server, another clawdbot, ...)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Coroutine
from typing import Any

from clawdbot.codecs import openai as oa
from clawdbot.codecs.sse import EventSplitter, event_data
from clawdbot.config.autodetect import api_base
from clawdbot.config.schema import Service
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import UpstreamError
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from clawdbot.providers.base import Probe, RawResponse
from clawdbot.providers.http import UpstreamHTTP, auth_headers, drain


async def decode_sse(chunks: AsyncGenerator[bytes, None], service: str | None) -> AsyncGenerator[ChatChunk, None]:
    """An OpenAI SSE body -> canonical chunks, up to [DONE]; the response is drained (or closed)
    when the generator ends, however it ends."""
    splitter = EventSplitter()
    complete = False
    try:
        async for raw in chunks:
            for event in splitter.feed(raw):
                data = event_data(event)
                if data is None:
                    continue
                chunk = oa.decode_stream_data(data)
                if chunk is None:  # [DONE]: the answer is complete, whatever the upstream does next
                    complete = True
                    return
                yield chunk
    finally:
        if complete:
            await drain(chunks)
        else:
            await chunks.aclose()  # now, not at garbage collection
    raise UpstreamError(f"service {service!r} ended the stream early (no [DONE])")


class OpenAIProvider:
    kind = "openai"

    def __init__(self, svc: Service) -> None:
        self.name = svc.name
        self.http = UpstreamHTTP(svc, auth_headers(svc))
        self.http.base = api_base(svc.endpoint or "")
        self.limit_field = svc.limit_field()

    async def close(self) -> None:
        await self.http.close()

    def connections(self) -> dict[str, Any]:
        return self.http.connections()

    # -- fast path: bytes in, bytes out -------------------------------------------------------

    def forward(self, path: str, body: bytes, stream: bool, ctx: RequestContext) -> Coroutine[Any, Any, RawResponse]:
        # the HTTP client's coroutine itself: no frame of its own on the hot path
        return self.http.forward(path, body, stream, ctx, oa.read_answer)

    # -- canonical path -----------------------------------------------------------------------

    async def chat(self, req: ChatRequest, ctx: RequestContext) -> ChatResponse:
        deadline = self.http.deadline()
        req.stream = False
        body = oa.encode_chat_request(req, self.limit_field)
        resp = await self.http.open("POST", "/chat/completions", ctx, body=body)
        await self.http.raise_for_status(resp, deadline)
        out = oa.decode_chat_response(await self.http.read_body(resp, deadline))
        ctx.upstream_model = out.model or req.model
        return out

    async def stream(self, req: ChatRequest, ctx: RequestContext) -> AsyncGenerator[ChatChunk, None]:
        deadline = self.http.deadline()
        req.stream = True
        body = oa.encode_chat_request(req, self.limit_field)
        resp = await self.http.open("POST", "/chat/completions", ctx, body=body)
        await self.http.raise_for_status(resp, deadline)
        ctx.upstream_model = req.model
        chunks = decode_sse(self.http.iter_chunks(resp, deadline), self.name)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()

    async def embed(self, req: EmbeddingRequest, ctx: RequestContext) -> EmbeddingResponse:
        deadline = self.http.deadline()
        resp = await self.http.open("POST", "/embeddings", ctx, body=oa.encode_embedding_request(req))
        await self.http.raise_for_status(resp, deadline)
        return oa.decode_embedding_response(await self.http.read_body(resp, deadline))

    async def probe(self) -> Probe:
        return await self.http.probe_models("/models", oa.decode_model_list)
