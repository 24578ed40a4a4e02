"""In-process test doubles for routing tests: a scripted provider (a real Provider, not a patch)
and helpers that build gateways, upstreams and deployments from YAML."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from clawdbot.config.loader import load_config_text
from clawdbot.config.schema import Service
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import GatewayError, UpstreamError
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, Message
from clawdbot.observability.metrics import ServiceStats
from clawdbot.pipeline.gateway import Gateway
from clawdbot.routing.breaker import MemoryBreaker
from clawdbot.routing.health import ServiceState
from clawdbot.routing.upstream import Deployment, Upstream


class Scripted:
    """Answers "<name>: ok"; `fail` (an error, raised on every call, or a list consumed one per
    call, None meaning success), `gate` (an Event every call waits for), `stream_fail_after`."""

    kind = "scripted"

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0
        self.fail: GatewayError | list[GatewayError | None] | None = None
        self.gate: asyncio.Event | None = None
        self.stream_fail_after: int | None = None
        self.closed = False
        self.entered = asyncio.Event()

    async def _enter(self) -> None:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        fail = self.fail
        if isinstance(fail, list):
            fail = fail.pop(0) if fail else None
        if fail is not None:
            raise fail

    async def chat(self, req: ChatRequest, ctx: RequestContext) -> ChatResponse:
        await self._enter()
        return ChatResponse("id", req.model, 0, Message("assistant", f"{self.name}: ok"))

    async def stream(self, req: ChatRequest, ctx: RequestContext) -> AsyncGenerator[ChatChunk, None]:
        await self._enter()
        for i in range(3):
            if self.stream_fail_after is not None and i == self.stream_fail_after:
                raise UpstreamError(f"{self.name} broke mid-stream")
            yield ChatChunk(content=f"{self.name}{i} ")

    async def close(self) -> None:
        self.closed = True


def services(*names: str, extra: str = "") -> str:
    return "services:\n" + "".join(f"  - {{name: {n}, type: mock{extra}}}\n" for n in names)


def gateway(yaml: str, names: list[str] | None = None) -> tuple[Gateway, dict[str, Scripted]]:
    config = load_config_text(yaml)
    fakes = {s.name: Scripted(s.name) for s in config.services if names is None or s.name in names}
    return Gateway(config, dict(fakes)), fakes  # type: ignore[arg-type]


def request(model: str, text: str = "hi", stream: bool = False) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message("user", text)], stream=stream)


def upstream(name: str, **svc: Any) -> Upstream:
    s = Service(name=name, type="mock", **svc)
    return Upstream(s, Scripted(name), MemoryBreaker(name, s.breaker), ServiceStats(),  # type: ignore[arg-type]
                    ServiceState(name, "mock"))


def deployment(name: str, **spec: Any) -> Deployment:
    import msgspec

    from clawdbot.config.schema import Deployment as Spec

    return Deployment(upstream(name), "m", msgspec.convert({"service": name, **spec}, Spec))
