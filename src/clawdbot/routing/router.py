"""From a request's `model` to the order its deployments are tried in.

Routes are built once per config (and again when a service's reported model list changes), so a
request costs a dict lookup plus its strategy's pick. Name resolution follows resolver.py: a
`models:` entry, a service name, a `metadata.model_id`, then `service/model` and discovered names
(those resolved on first use and cached, a bounded number of them)."""

from __future__ import annotations

from collections.abc import Mapping

from clawdbot.config.schema import Config, ModelEntry, parse_target
from clawdbot.config.schema import Deployment as DeploymentConfig
from clawdbot.core.context import RequestContext
from clawdbot.core.types import ChatRequest
from clawdbot.routing.health import HealthMonitor
from clawdbot.routing.hook import Hook, HookFn, RouteContext, RouteRequest
from clawdbot.routing.limiter import Limiter
from clawdbot.routing.resolver import Resolver, default_model
from clawdbot.routing.strategies import STRATEGIES, Order, Pool, Strategy
from clawdbot.routing.upstream import Deployment, Upstream
from clawdbot.routing.windows import TimeWindows

DYNAMIC_ROUTES = 4096  # resolved `service/model` and discovered names cached at most


def _names(value: list[str] | str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset([value] if isinstance(value, str) else value)


class RulePick:
    __slots__ = ("pool", "priorities", "tags", "times")

    def __init__(self, priorities: frozenset[str] | None, times: frozenset[str] | None,
                 tags: frozenset[str] | None, pool: Pool) -> None:
        self.priorities, self.times, self.tags, self.pool = priorities, times, tags, pool


class Route:
    """One public model name: its pools, strategy, rules, hook, fallbacks and retry settings."""

    __slots__ = ("deps", "explore", "fallbacks", "hook", "max_attempts", "name", "pool", "retries", "rules",
                 "strategy", "tag_pools", "upstreams", "windows")

    def __init__(self, name: str, deps: list[Deployment], upstreams: Mapping[str, Upstream],
                 windows: TimeWindows, entry: ModelEntry | None = None, hook: HookFn | None = None) -> None:
        self.name = name
        self.upstreams = upstreams
        self.windows = windows
        self.deps = tuple(deps)
        self.strategy: Strategy = STRATEGIES[entry.strategy if entry is not None else "ordered"]
        self.explore = entry.explore if entry is not None else 0.0
        self.fallbacks = tuple(entry.fallbacks) if entry is not None else ()
        self.retries = entry.retries if entry is not None else 0
        self.max_attempts = (entry.max_attempts if entry is not None else None) or 1_000_000
        open_ = [d for d in deps if d.weight > 0] or deps  # weight 0: only for requests tagged for it
        self.pool = Pool(open_)
        tags = sorted({t for d in deps for t in d.tags})
        self.tag_pools: dict[str, Pool] | None = {
            t: Pool([d for d in deps if t in d.tags], open_) for t in tags} or None
        self.rules: tuple[RulePick, ...] | None = None
        if entry is not None and entry.strategy == "rules":
            picks = []
            for rule in entry.rules:
                use = _names(rule.use) or frozenset()
                group = [d for d in deps if d.service in use or d.tags & use]
                w = rule.when
                picks.append(RulePick(_names(w.priority), _names(w.time), _names(w.tag), Pool(group, open_)))
            self.rules = tuple(picks)
        self.hook = Hook(entry.hook, name, hook, RouteContext(name, windows, upstreams, self.pool.deps)) \
            if entry is not None and entry.hook and hook is not None else None

    def order(self, ctx: RequestContext, stream: bool, req: ChatRequest | None = None) -> Order:
        pool = self.pool
        tag = ctx.tag
        if self.rules is not None:
            pool = self._rule_pool(ctx) or (self.tag_pools.get(tag, pool) if tag and self.tag_pools else pool)
        elif tag is not None and self.tag_pools is not None:
            pool = self.tag_pools.get(tag, pool)
        order = self.strategy(pool, stream, self.explore)
        if self.hook is not None:
            order = self._hooked(order, ctx, stream, req)
        return order

    def _rule_pool(self, ctx: RequestContext) -> Pool | None:
        active = None
        for r in self.rules or ():
            if r.priorities is not None and ctx.priority not in r.priorities:
                continue
            if r.tags is not None and ctx.tag not in r.tags:
                continue
            if r.times is not None:
                if active is None:
                    active = self.windows.active()
                if not r.times & active:
                    continue
            return r.pool
        return None

    def _hooked(self, order: Order, ctx: RequestContext, stream: bool, req: ChatRequest | None) -> Order:
        assert self.hook is not None
        name = self.hook.choose(RouteRequest(self.name, ctx, stream, req), self.upstreams)
        if name is None or (order and order[0].service == name):
            return order
        chosen = next((d for d in order if d.service == name), None) or next(
            (d for d in self.deps if d.service == name), None)
        if chosen is None:  # a configured service outside this entry: its default model
            up = self.upstreams[name]
            chosen = Deployment(up, up.svc.model_id or name)
        return (chosen, *(d for d in order if d is not chosen))


class Router:
    def __init__(self, config: Config, upstreams: Mapping[str, Upstream], monitor: HealthMonitor,
                 hooks: Mapping[str, HookFn]) -> None:
        self.config = config
        self.upstreams = upstreams
        self.monitor = monitor
        self.hooks = hooks
        self.windows = TimeWindows(config.routing.timezone, config.routing.windows)
        self.resolver = Resolver(config, monitor)
        self._caps: dict[tuple[str, int], Limiter] = {}  # deployment-level max_inflight, kept across rebuilds
        self._gen = -1
        self.routes: dict[str, Route] = {}
        self._dynamic: dict[str, Route] = {}

    def route(self, name: str) -> Route:
        if self.monitor.generation != self._gen:
            self._build()
        r = self.routes.get(name)
        if r is None:
            r = self._dynamic.get(name)
            if r is None:
                r = self._resolve(name)
        return r

    def _resolve(self, name: str) -> Route:
        targets = self.resolver.resolve(name)  # raises ModelNotFound / BadRequest (ambiguous)
        deps = [Deployment(self.upstreams[t.service], t.model) for t in targets if t.service in self.upstreams]
        r = Route(name, deps, self.upstreams, self.windows)
        if len(self._dynamic) >= DYNAMIC_ROUTES:
            self._dynamic.clear()
        self._dynamic[name] = r
        return r

    def _deployment(self, entry: str, i: int, spec: DeploymentConfig) -> Deployment:
        up = self.upstreams[spec.service]
        model = spec.model or default_model(up.svc, self.monitor)
        cap = None
        if spec.max_inflight is not None:
            cap = self._caps.get((entry, i))
            if cap is None or cap.max_inflight != spec.max_inflight:
                cap = self._caps[(entry, i)] = Limiter(f"{entry}[{i}]", spec.max_inflight)
        return Deployment(up, model, spec, cap)

    def _build(self) -> None:
        self._gen = self.monitor.generation
        routes: dict[str, Route] = {}
        for name, entry in self.config.models.items():
            specs = entry.all_deployments() if isinstance(entry, ModelEntry) else [parse_target(t) for t in entry]
            deps = [self._deployment(name, i, s) for i, s in enumerate(specs)]
            hook = self.hooks.get(name) if isinstance(entry, ModelEntry) else None
            routes[name] = Route(name, deps, self.upstreams, self.windows,
                                 entry if isinstance(entry, ModelEntry) else None, hook)
        by_id: dict[str, list[Deployment]] = {}
        for svc in self.config.services:
            up = self.upstreams[svc.name]
            if svc.name not in routes:
                routes[svc.name] = Route(svc.name, [Deployment(up, default_model(svc, self.monitor))],
                                         self.upstreams, self.windows)
            if svc.model_id:
                by_id.setdefault(svc.model_id, []).append(Deployment(up, svc.model_id))
        for model_id, deps in by_id.items():
            if model_id not in routes:
                routes[model_id] = Route(model_id, deps, self.upstreams, self.windows)
        self.routes = routes
        self._dynamic = {}
