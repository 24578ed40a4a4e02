"""What the router knows about a service (`Upstream`) and about one place a model is served
(`Deployment`). Everything a strategy reads per request is a plain attribute here: no Protocol
checks, no dict lookups."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from clawdbot.config.schema import Deployment as DeploymentConfig
from clawdbot.config.schema import Service
from clawdbot.config.service_types import TYPES
from clawdbot.observability.metrics import ServiceStats
from clawdbot.providers.base import Embedder, Passthrough, Pooled, Provider
from clawdbot.routing.breaker import Breaker
from clawdbot.routing.credentials import credentials
from clawdbot.routing.fair import fair_share
from clawdbot.routing.health import ServiceState
from clawdbot.routing.limiter import Limiter, Unlimited


class Upstream:
    """One configured service: its provider, concurrency limiter, circuit breaker, live numbers and
    health. A config reload keeps the Upstream (warm connections, counters, queue) when the
    service's settings did not change."""

    __slots__ = ("breaker", "connections", "embedder", "forwards", "health", "ignores_cap", "limit_field", "limiter",
                 "name", "provider", "secrets", "stats", "svc")

    def __init__(self, svc: Service, provider: Provider, breaker: Breaker, stats: ServiceStats,
                 health: ServiceState) -> None:
        self.name = svc.name
        self.svc = svc
        self.provider = provider
        self.secrets = credentials(svc)  # never in what the gateway says about the service (credentials.py)
        # isinstance() against a runtime-checkable Protocol inspects every member: once, here.
        # The dialect whose requests it takes as bytes (the fast path), None: canonical only.
        self.forwards = TYPES[svc.type].dialect if isinstance(provider, Passthrough) else None
        self.embedder = isinstance(provider, Embedder)
        # an HTTP service's connection pool numbers (/debug)
        self.connections: Callable[[], dict[str, Any]] | None = (
            provider.connections if isinstance(provider, Pooled) else None)
        self.limit_field = svc.limit_field()  # the output limit's name on the fast path
        # answered more completion tokens than it was sent as the limit: from then on a budgeted
        # non-stream request to it is collected from a stream the gateway can cut (api/collect.py)
        self.ignores_cap = False
        lim = svc.limits
        self.limiter: Limiter | Unlimited = (
            Limiter(svc.name, lim.max_inflight, lim.max_queue, lim.queue_timeout, fair_share(lim.fair_share))
            if lim.max_inflight is not None else Unlimited(svc.name))
        self.breaker = breaker
        self.stats = stats
        self.health = health

    @property
    def healthy(self) -> bool:
        return self.health.reachable is not False

    def queues(self) -> dict[str, Any]:
        """What waits on this service, for /debug: requests in its limiter's queue and, for an HTTP
        service, its connection pool (open, idle, waiting for a connection, ...)."""
        out: dict[str, Any] = {"queued": self.limiter.waiting}
        if self.connections is not None:
            out["pool"] = self.connections()
        return out


class Deployment:
    """A service (and upstream model) inside one `models:` entry, with that entry's weight, priority,
    tags, cost and optional cap on its own in-flight requests."""

    __slots__ = ("cap", "cost", "header_key", "key", "model", "priority", "service", "tags", "upstream", "weight")

    def __init__(self, upstream: Upstream, model: str, spec: DeploymentConfig | None = None,
                 cap: Limiter | None = None) -> None:
        self.upstream = upstream
        self.service = upstream.name
        self.model = model
        self.key = f"{upstream.name}/{model}"
        self.header_key = header_safe(self.key)  # in X-Clawdbot-Attempts; made once, not per request
        self.weight = spec.weight if spec is not None else 1.0
        self.priority = spec.priority if spec is not None else 0
        self.tags = frozenset(spec.tags) if spec is not None else frozenset()
        cost = spec.cost if spec is not None else None
        # per million tokens; (input, output)
        self.cost = (cost.input, cost.output) if cost is not None else None
        self.cap = cap

    def __repr__(self) -> str:
        return f"Deployment({self.key})"


_TOKEN = re.compile(r"[A-Za-z0-9._:/@+~-]*")


def header_safe(text: str) -> str:
    """`text` for a response header: a model name may be the client's own string (CR/LF would split
    the header, non-Latin-1 text would not encode), so anything but token characters is %-escaped."""
    return text if _TOKEN.fullmatch(text) else urllib.parse.quote(text, safe="._:/@+~-")
