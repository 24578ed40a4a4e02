"""Service types the schema accepts (grpc) before their adapters exist: they load, and
every request to them fails with a clear 501 instead of a crash."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from clawdbot.config.schema import Service
from clawdbot.config.service_types import supported_names
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import NotImplementedByService
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse


class UnsupportedProvider:
    def __init__(self, svc: Service) -> None:
        self.name = svc.name
        self.kind = svc.type

    def _error(self) -> NotImplementedByService:
        return NotImplementedByService(
            f"service {self.name!r} has type {self.kind!r}, which this version of clawdbot accepts in "
            f"its configuration but cannot call yet (supported now: {supported_names()})",
            code="service_type_unsupported",
        )

    async def chat(self, req: ChatRequest, ctx: RequestContext) -> ChatResponse:
        raise self._error()

    async def stream(self, req: ChatRequest, ctx: RequestContext) -> AsyncGenerator[ChatChunk, None]:
        raise self._error()
        yield ChatChunk()  # pragma: no cover - makes this an async generator

    async def close(self) -> None:
        return None
