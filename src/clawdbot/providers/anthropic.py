"""`type: anthropic` services: Anthropic's Messages API (or a server that speaks it), through the
same pooled HTTP client as the OpenAI provider. The key goes in `x-api-key` (the service's
`auth.key`), with `anthropic-version`; answers and streams are translated to canonical types
(codecs/anthropic_upstream.py), or, for a client of Anthropic's own dialect, passed through as
bytes (`forward`, with the client's `anthropic-beta`); `/v1/models` answers the probe and model
discovery."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator

from clawdbot.codecs import anthropic_raw as ar
from clawdbot.codecs import anthropic_upstream as au
from clawdbot.codecs.sse import EventSplitter, event_data
from clawdbot.config.schema import Service
from clawdbot.config.service_types import TYPES
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import UpstreamError
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse
from clawdbot.providers.base import Probe, RawResponse
from clawdbot.providers.http import UpstreamHTTP, auth_headers, drain

BETA = b"anthropic-beta"


class AnthropicProvider:
    kind = "anthropic"

    def __init__(self, svc: Service) -> None:
        self.name = svc.name
        self.http = UpstreamHTTP(svc, {"anthropic-version": au.VERSION, **auth_headers(svc)})
        base = (svc.endpoint or TYPES[svc.type].default_endpoint or "").rstrip("/")
        self.http.base = base if base.endswith("/v1") else base + "/v1"

    async def close(self) -> None:
        await self.http.close()

    def connections(self) -> dict[str, object]:
        return self.http.connections()

    async def forward(self, path: str, body: bytes, stream: bool, ctx: RequestContext) -> RawResponse:
        """A client's own Messages request (the fast path): its beta features go along."""
        beta = ctx.headers.get(BETA) if ctx.headers else None
        headers = {"anthropic-beta": beta.decode("latin-1")} if beta else None
        return await self.http.forward(path, body, stream, ctx, ar.read_answer, headers)

    async def chat(self, req: ChatRequest, ctx: RequestContext) -> ChatResponse:
        deadline = self.http.deadline()
        req.stream = False
        resp = await self.http.open("POST", "/messages", ctx, body=au.encode_request(req, req.model))
        await self.http.raise_for_status(resp, deadline)
        out = au.decode_response(await self.http.read_body(resp, deadline))
        out.created = int(time.time())
        ctx.upstream_model = out.model or req.model
        return out

    async def stream(self, req: ChatRequest, ctx: RequestContext) -> AsyncGenerator[ChatChunk, None]:
        deadline = self.http.deadline()
        req.stream = True
        resp = await self.http.open("POST", "/messages", ctx, body=au.encode_request(req, req.model))
        await self.http.raise_for_status(resp, deadline)
        ctx.upstream_model = req.model
        chunks = self.http.iter_chunks(resp, deadline)
        splitter, dec = EventSplitter(), au.StreamDecoder()
        try:
            async for raw in chunks:
                for ev in splitter.feed(raw):
                    data = event_data(ev)
                    if data is None:
                        continue
                    chunk = dec.decode(data)
                    if chunk is None:  # message_stop: the answer is complete
                        return
                    if chunk.content or chunk.reasoning or chunk.tool_calls or chunk.finish_reason or chunk.role:
                        yield chunk
        finally:
            if dec.done:
                await drain(chunks)
            else:
                await chunks.aclose()
        raise UpstreamError(f"service {self.name!r} ended the stream early (no message_stop)")

    async def probe(self) -> Probe:
        return await self.http.probe_models("/models", au.decode_models)
