"""A runtime: everything one version of the config serves with (config, upstreams, router).

Built whole, never changed afterwards; a reload builds a new one and swaps the gateway's single
reference to it. Each request holds the runtime it started with (`enter`/`leave`), so it finishes
on that config; a retired runtime closes the providers the new one did not take over once its
last request has left. A service whose settings did not change keeps its Upstream (warm
connections, in-flight count, queue, breaker) across the reload."""

from __future__ import annotations

from collections.abc import Callable

from clawdbot.config.schema import Config, ModelEntry
from clawdbot.observability.metrics import Metrics
from clawdbot.providers.base import Provider
from clawdbot.providers.registry import build_provider
from clawdbot.routing.breaker import BreakerStore
from clawdbot.routing.health import HealthMonitor, ServiceState
from clawdbot.routing.hook import HookError, LoadedHook, load_hook
from clawdbot.routing.router import Router
from clawdbot.routing.upstream import Upstream

Drained = Callable[[list[Upstream]], None]


class Runtime:
    __slots__ = ("_close", "_on_drained", "active", "config", "generation", "hooks", "router", "upstreams")

    def __init__(self, config: Config, upstreams: dict[str, Upstream], router: Router, generation: int,
                 hooks: dict[str, LoadedHook] | None = None) -> None:
        self.config = config
        self.hooks = hooks or {}  # model entry -> its loaded routing hook
        self.upstreams = upstreams
        self.router = router
        self.generation = generation
        self.active = 0  # requests running on this runtime
        self._close: list[Upstream] | None = None  # set when retired
        self._on_drained: Drained | None = None

    def enter(self) -> None:
        self.active += 1

    def leave(self) -> None:
        self.active -= 1
        if self.active == 0 and self._close is not None:
            self._drained()

    def retire(self, close: list[Upstream], on_drained: Drained) -> None:
        """No new requests will come; close `close` once the running ones are done."""
        self._close, self._on_drained = close, on_drained
        if self.active == 0:
            self._drained()

    @property
    def retired(self) -> bool:
        return self._close is not None

    def _drained(self) -> None:
        close, self._close = self._close or [], []
        if self._on_drained is not None:
            on_drained, self._on_drained = self._on_drained, None
            on_drained(close)


def load_hooks(config: Config, previous: dict[str, LoadedHook] | None = None) -> dict[str, LoadedHook]:
    """Every entry's routing hook, imported; unchanged hook files are kept from `previous`. Raises
    HookError naming the entry: the config is rejected."""
    hooks: dict[str, LoadedHook] = {}
    for name, e in config.models.items():
        if isinstance(e, ModelEntry) and e.hook:
            try:
                hooks[name] = load_hook(e.hook, (previous or {}).get(name))
            except HookError as exc:
                exc.model = name
                raise
    return hooks


def build_runtime(
    config: Config, previous: Runtime | None, breakers: BreakerStore, metrics: Metrics, monitor: HealthMonitor,
    providers: dict[str, Provider] | None = None, generation: int = 1,
) -> Runtime:
    """Raises (HookError, or whatever a provider's constructor raises) when the config cannot be
    served; nothing is started until it is swapped in."""
    hooks = load_hooks(config, previous.hooks if previous is not None else None)
    upstreams: dict[str, Upstream] = {}
    for svc in config.services:
        old = previous.upstreams.get(svc.name) if previous is not None else None
        if old is not None and old.svc == svc and (providers is None or svc.name not in providers):
            upstreams[svc.name] = old
            continue
        provider = providers[svc.name] if providers and svc.name in providers else build_provider(svc)
        # a new provider starts with a fresh health state (None: not probed yet, routable)
        upstreams[svc.name] = Upstream(svc, provider, breakers.get(svc.name, svc.breaker), metrics.service(svc.name),
                                       ServiceState(svc.name, provider.kind))
    router = Router(config, upstreams, monitor, {name: h.fn for name, h in hooks.items()})
    return Runtime(config, upstreams, router, generation, hooks)
