"""What a request costs, from the config: a deployment's own `cost`, else `costs:` by public name,
`service/model` or upstream model name, else nothing for self-hosted services (local, ollama, mock),
else unknown.

Before dispatch the gateway does not know which deployment will answer (failover, fallbacks), so
the worst case is priced at the dearest deployment the request could reach."""

from __future__ import annotations

from collections.abc import Iterable

from clawdbot.config.schema import Config
from clawdbot.config.service_types import TYPES
from clawdbot.routing.router import Route
from clawdbot.routing.upstream import Deployment
from clawdbot.tenancy.costs import FREE, Price

MAX_FALLBACK_DEPTH = 4


class Pricing:
    def __init__(self, config: Config) -> None:
        self._costs = {name: Price(c.input, c.output) for name, c in config.costs.items()}
        self._free = {s.name for s in config.services if TYPES[s.type].self_hosted}

    def of(self, public: str | None, service: str, model: str | None,
           own: tuple[float, float] | None = None) -> Price | None:
        """The price of `public` served by `service`/`model`; None when nothing prices it."""
        if own is not None:
            return Price(own[0], own[1])
        for name in (public, f"{service}/{model}" if model else None, model):
            if name is not None:
                found = self._costs.get(name)
                if found is not None:
                    return found
        if service in self._free:
            return FREE
        return None

    def deployment(self, public: str, dep: Deployment) -> Price | None:
        return self.of(public, dep.service, dep.model, dep.cost)

    def served(self, public: str | None, route: Route | None, service: str, model: str | None) -> Price | None:
        """The price of the deployment that answered (its own `cost` if the route lists it)."""
        if route is not None:
            for dep in route.deps:
                if dep.service == service and (model is None or dep.model == model):
                    return self.deployment(route.name, dep)
        return self.of(public, service, model)

    def worst(self, routes: Iterable[Route]) -> Price | None:
        """The dearest input and output price over every deployment of `routes`; None if one of
        them has no price (the request could land there and cost anything)."""
        top_in = top_out = 0.0
        for route in routes:
            for dep in route.deps:
                price = self.deployment(route.name, dep)
                if price is None:
                    return None
                top_in, top_out = max(top_in, price.input_per_m), max(top_out, price.output_per_m)
        return Price(top_in, top_out)
