"""What a provider is: a narrow Protocol (chat, stream) plus optional capabilities.

A provider adapter speaks one upstream dialect through that dialect's codec. Capabilities are
separate Protocols so a provider implements only what its upstream can do; callers check with
isinstance() against the runtime-checkable Protocols below.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any, Protocol, runtime_checkable

import msgspec

from clawdbot.core.context import RequestContext
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse


class Probe(msgspec.Struct):
    ok: bool
    latency_ms: float | None = None
    detail: str | None = None
    models: list[str] | None = None  # models the upstream reports, when it reports them
    status: int | None = None  # the upstream's HTTP status, when it answered the probe with an error


@runtime_checkable
class Provider(Protocol):
    name: str
    kind: str

    async def chat(self, req: ChatRequest, ctx: RequestContext) -> ChatResponse: ...

    def stream(self, req: ChatRequest, ctx: RequestContext) -> AsyncGenerator[ChatChunk, None]:
        """Canonical chunks, as they arrive. Closing the iterator early cancels the upstream call."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class Embedder(Protocol):
    async def embed(self, req: EmbeddingRequest, ctx: RequestContext) -> EmbeddingResponse: ...


@runtime_checkable
class Prober(Protocol):
    async def probe(self) -> Probe:
        """Reachability, latency and (for dynamic services) the models it serves."""
        ...


@runtime_checkable
class Pooled(Protocol):
    """A provider that keeps upstream connections (HTTP): their numbers for /debug."""

    def connections(self) -> dict[str, Any]: ...


class RawResponse(msgspec.Struct):
    """An upstream response passed through untouched (the fast path: a client of the service's own dialect)."""

    status: int
    content_type: str
    body: bytes | None = None  # non-stream
    chunks: AsyncGenerator[bytes, None] | None = None  # stream: raw SSE bytes as they arrive
    # stream: has the whole response arrived? (then nothing left to read can keep a reader waiting)
    complete: Callable[[], bool] | None = None


@runtime_checkable
class Passthrough(Protocol):
    """An upstream that takes its dialect's request bytes as they came (the dialect: its service type's,
    config/service_types.py)."""

    async def forward(self, path: str, body: bytes, stream: bool, ctx: RequestContext) -> RawResponse: ...
