"""What the gateway knows about each service: reachability, last probe latency, the models it reports.

Active health checks (Ollama `/api/tags`, OpenAI `/v1/models`) run at start and then every
`health_interval` seconds per service (default `server.discovery_interval`), off the request path,
one task per service so a slow probe never delays another. The router skips a service whose last
probe failed while another deployment of the model is healthy. `generation` changes whenever a
reported model list does, which tells the router to rebuild its routes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Iterable

import msgspec

from clawdbot.providers.base import Prober, Provider
from clawdbot.routing.credentials import redact

log = logging.getLogger("clawdbot.health")


class ServiceState(msgspec.Struct):
    name: str
    kind: str
    reachable: bool | None = None  # None: not probed yet
    latency_ms: float | None = None
    checked_at: float | None = None
    detail: str | None = None
    models: list[str] = []
    breaker: str = "closed"  # the circuit breaker's state (routing/breaker.py), kept current by the gateway


class Probed(msgspec.Struct):
    """One service as the monitor probes it."""

    provider: Provider
    interval: float  # seconds between probes; 0: only at start
    discover: bool  # its reported models are routable
    secrets: tuple[str, ...] = ()  # its credentials: never in a probe's detail (routing/credentials.py)


class HealthMonitor:
    def __init__(self, providers: dict[str, Provider], interval: float, discover: set[str],
                 intervals: dict[str, float] | None = None) -> None:
        self.interval = interval
        self.generation = 0
        self.states: dict[str, ServiceState] = {}
        self._targets: dict[str, Probed] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._probing: dict[str, asyncio.Future[ServiceState]] = {}  # at most one probe per service
        self._running = False
        self.update(
            {n: Probed(p, (intervals or {}).get(n, interval), n in discover) for n, p in providers.items()})

    @property
    def providers(self) -> dict[str, Provider]:
        return {n: t.provider for n, t in self._targets.items()}

    def state(self, name: str, kind: str) -> ServiceState:
        """The state object of `name` (kept across reloads while the service exists)."""
        st = self.states.get(name)
        return st if st is not None and st.kind == kind else ServiceState(name, kind)

    def update(self, targets: dict[str, Probed], states: Iterable[ServiceState] = ()) -> list[str]:
        """Probe these services from now on (a config reload). Returns the names whose provider is new."""
        adopted = {s.name: s for s in states}
        changed = [n for n, t in targets.items()
                   if n not in self._targets or self._targets[n].provider is not t.provider]
        for name in [n for n in self._targets if n not in targets or n in changed]:
            self._probing.pop(name, None)  # a probe of the old provider says nothing of the new one
            task = self._tasks.pop(name, None)
            if task is not None:
                task.cancel()
        new_states = {}
        for name, t in targets.items():
            st = adopted.get(name)
            if st is None:
                st = ServiceState(name, t.provider.kind) if name in changed else self.state(name, t.provider.kind)
            new_states[name] = st
        old_models = {n: s.models for n, s in self.states.items()}
        self.states = new_states
        self._targets = dict(targets)
        if old_models != {n: s.models for n, s in new_states.items()}:
            self.generation += 1
        if self._running:
            for name in changed:
                self._start(name)
        return changed

    async def probe_all(self) -> None:
        await asyncio.gather(*(self.probe(name) for name in list(self._targets)))

    async def refresh(self, max_age: float) -> None:
        """Probe the services whose last result is older than `max_age` seconds (or missing)."""
        now = time.time()
        stale = [n for n, s in self.states.items() if s.checked_at is None or now - s.checked_at > max_age]
        if stale:
            await asyncio.gather(*(self.probe(n) for n in stale if n in self._targets))

    async def probe(self, name: str) -> ServiceState:
        """Probe `name` now, or join the probe of it already in flight (a burst of /readyz
        requests, or one coinciding with the periodic check, costs the upstream one probe)."""
        fut = self._probing.get(name)
        if fut is None:
            fut = self._probing[name] = asyncio.ensure_future(self._probe(name))
            fut.add_done_callback(functools.partial(self._probed, name))
        return await asyncio.shield(fut)

    def _probed(self, name: str, fut: asyncio.Future[ServiceState]) -> None:
        if self._probing.get(name) is fut:
            del self._probing[name]
        if not fut.cancelled():
            fut.exception()  # retrieved: every waiter may have gone away

    async def _probe(self, name: str) -> ServiceState:
        target, state = self._targets[name], self.states[name]
        if not isinstance(target.provider, Prober):
            state.reachable, state.checked_at = True, time.time()
            return state
        result = await target.provider.probe()
        detail = redact(result.detail, target.secrets) if result.detail else result.detail
        if state.reachable is not False and not result.ok:
            log.warning("service %s is unreachable: %s", name, detail)
        elif state.reachable is False and result.ok:
            log.info("service %s is reachable again", name)
        state.reachable, state.latency_ms, state.detail = result.ok, result.latency_ms, detail
        state.checked_at = time.time()
        if result.models is not None and target.discover and result.models != state.models:
            state.models = result.models
            self.generation += 1
        return state

    def start(self) -> None:
        self._running = True
        for name in self._targets:
            self._start(name)

    def _start(self, name: str) -> None:
        interval = self._targets[name].interval
        if interval > 0 and name not in self._tasks:
            self._tasks[name] = asyncio.get_running_loop().create_task(self._loop(name, interval))

    async def _loop(self, name: str, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await self.probe(name)

    async def stop(self) -> None:
        self._running = False
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
