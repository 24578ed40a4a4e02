"""What the gateway knows about each service: reachability, last probe latency, the models it reports.
Probes run at start and every `server.discovery_interval` seconds, off the request path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import msgspec

from clawdbot.providers.base import Prober, Provider

log = logging.getLogger("clawdbot.health")


class ServiceState(msgspec.Struct):
    name: str
    kind: str
    reachable: bool | None = None  # None: not probed yet
    latency_ms: float | None = None
    checked_at: float | None = None
    detail: str | None = None
    models: list[str] = []


class HealthMonitor:
    def __init__(self, providers: dict[str, Provider], interval: float, discover: set[str]) -> None:
        self.providers = providers
        self.discover = discover  # services whose reported models are routable
        self.interval = interval
        self.states = {name: ServiceState(name, p.kind) for name, p in providers.items()}
        self._task: asyncio.Task[None] | None = None

    async def probe_all(self) -> None:
        await asyncio.gather(*(self.probe(name) for name in self.providers))

    async def probe(self, name: str) -> ServiceState:
        provider, state = self.providers[name], self.states[name]
        if not isinstance(provider, Prober):
            state.reachable, state.checked_at = True, time.time()
            return state
        result = await provider.probe()
        if state.reachable is not False and not result.ok:
            log.warning("service %s is unreachable: %s", name, result.detail)
        elif state.reachable is False and result.ok:
            log.info("service %s is reachable again", name)
        state.reachable, state.latency_ms, state.detail = result.ok, result.latency_ms, result.detail
        state.checked_at = time.time()
        if result.models is not None and name in self.discover:
            state.models = result.models
        return state

    def start(self) -> None:
        if self._task is None and self.interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            with contextlib.suppress(Exception):
                await self.probe_all()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
