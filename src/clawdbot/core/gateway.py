"""Gateway orchestration: resolve the model, pick a service, call it, fail over to the next target
on retryable errors (never once a stream has delivered its first chunk)."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

import msgspec

from clawdbot.codecs import openai as oa
from clawdbot.config.schema import Config
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import GatewayError, NotImplementedByService, UpstreamUnavailable
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from clawdbot.observability.metrics import Metrics
from clawdbot.providers.base import Embedder, Passthrough, Provider, RawResponse
from clawdbot.providers.registry import build_provider
from clawdbot.routing.health import HealthMonitor
from clawdbot.routing.resolver import Resolver, Target

log = logging.getLogger("clawdbot.gateway")
T = TypeVar("T")


class Gateway:
    def __init__(self, config: Config, providers: dict[str, Provider]) -> None:
        self.config = config
        self.providers = providers
        discover = {s.name for s in config.services if s.discover}
        self.monitor = HealthMonitor(providers, config.server.discovery_interval, discover)
        self.resolver = Resolver(config, self.monitor)
        self.metrics = Metrics()
        # isinstance() against a runtime-checkable Protocol inspects every member on each call:
        # ask once per provider.
        self._passthrough: dict[int, tuple[Provider, bool]] = {}

    def _is_passthrough(self, p: Provider) -> bool:
        known = self._passthrough.get(id(p))
        if known is None or known[0] is not p:
            known = self._passthrough[id(p)] = (p, isinstance(p, Passthrough))
        return known[1]

    @classmethod
    def from_config(cls, config: Config) -> Gateway:
        return cls(config, {s.name: build_provider(s) for s in config.services})

    async def start(self) -> None:
        await self.monitor.probe_all()
        self.monitor.start()
        self.metrics.start()

    async def close(self) -> None:
        await self.monitor.stop()
        await self.metrics.stop()
        for p in self.providers.values():
            await p.close()

    def _targets(self, model: str) -> list[tuple[Target, Provider]]:
        out = []
        for t in self.resolver.resolve(model):
            provider = self.providers.get(t.service)
            if provider is not None:
                out.append((t, provider))
        if not out:
            raise UpstreamUnavailable(f"no service can take model {model!r}")
        return out

    async def _failover(
        self, model: str, ctx: RequestContext, call: Callable[[Target, Provider], Awaitable[T]],
        targets: list[tuple[Target, Provider]] | None = None,
    ) -> T:
        if targets is None:
            targets = self._targets(model)
        for i, (target, provider) in enumerate(targets):
            ctx.service, ctx.upstream_model = target.service, target.model
            stats = self.metrics.service(target.service)
            ctx.attempt_started = stats.begin()
            try:
                result = await call(target, provider)
                if not isinstance(result, AsyncGenerator | tuple) and not (
                        isinstance(result, RawResponse) and result.chunks is not None):
                    self.finish(ctx)  # a whole answer: the upstream's part is over
                return result
            except BaseException as exc:
                stats.end(ctx.attempt_started, None, getattr(exc, "message", None) or type(exc).__name__)
                ctx.attempt_started = None
                if not isinstance(exc, GatewayError) or not exc.retryable or i == len(targets) - 1:
                    raise
                log.warning("service %s failed (%s); trying %s", target.service, exc.message,
                            targets[i + 1][0].service)
        raise AssertionError("unreachable")

    def finish(self, ctx: RequestContext) -> None:
        """Close the answering attempt's books when the request ends (a stream ends long after
        the call that opened it returned)."""
        if ctx.attempt_started is None or ctx.service is None:
            return
        upstream_ms = self.metrics.service(ctx.service).end(ctx.attempt_started, ctx.ttft_ms(), ctx.error)
        ctx.attempt_started = None
        if ctx.error is None:
            self.metrics.overhead.add(max(0.0, ctx.elapsed_ms() - upstream_ms))

    async def chat(self, req: ChatRequest, ctx: RequestContext) -> ChatResponse:
        async def call(t: Target, p: Provider) -> ChatResponse:
            return await p.chat(msgspec.structs.replace(req, model=t.model, stream=False), ctx)

        return await self._failover(req.model, ctx, call)

    async def stream(self, req: ChatRequest, ctx: RequestContext) -> AsyncGenerator[ChatChunk, None]:
        """Fails over while opening the stream; after the first chunk, errors reach the caller."""

        async def open_stream(t: Target, p: Provider) -> tuple[AsyncGenerator[ChatChunk, None], ChatChunk | None]:
            it = p.stream(msgspec.structs.replace(req, model=t.model, stream=True), ctx)
            try:
                first = await anext(it)
            except StopAsyncIteration:
                return it, None
            except BaseException:
                await it.aclose()
                raise
            return it, first

        it, first = await self._failover(req.model, ctx, open_stream)
        try:
            if first is None:
                return
            yield first
            async for chunk in it:
                yield chunk
        finally:
            await it.aclose()

    async def forward_openai(
        self, body: bytes, req: ChatRequest, ctx: RequestContext
    ) -> RawResponse | ChatResponse | AsyncGenerator[ChatChunk, None]:
        """OpenAI-dialect request: pass the bytes through when the target speaks OpenAI, otherwise
        translate through the canonical types."""
        targets = self._targets(req.model)
        if not self._is_passthrough(targets[0][1]):
            return self.stream(req, ctx) if req.stream else await self.chat(req, ctx)

        async def call(t: Target, p: Provider) -> RawResponse | ChatResponse | AsyncGenerator[ChatChunk, None]:
            if not self._is_passthrough(p):
                if req.stream:
                    return self._single_stream(t, p, req, ctx)
                return await p.chat(msgspec.structs.replace(req, model=t.model), ctx)
            force_usage = req.stream and not req.include_usage
            out = body
            if t.model != req.model or force_usage:
                out = oa.rewrite_request(body, t.model if t.model != req.model else None, force_usage)
            fwd: Passthrough = p  # type: ignore[assignment]  # _is_passthrough said so
            return await fwd.forward("/chat/completions", out, req.stream, ctx)

        return await self._failover(req.model, ctx, call, targets)

    async def _single_stream(
        self, t: Target, p: Provider, req: ChatRequest, ctx: RequestContext
    ) -> AsyncGenerator[ChatChunk, None]:
        async for chunk in p.stream(msgspec.structs.replace(req, model=t.model), ctx):
            yield chunk

    async def embed(self, req: EmbeddingRequest, ctx: RequestContext) -> EmbeddingResponse:
        async def call(t: Target, p: Provider) -> EmbeddingResponse:
            if not isinstance(p, Embedder):
                raise NotImplementedByService(f"service {t.service!r} does not serve embeddings")
            return await p.embed(msgspec.structs.replace(req, model=t.model), ctx)

        return await self._failover(req.model, ctx, call)
