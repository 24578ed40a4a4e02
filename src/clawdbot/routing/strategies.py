"""Strategies: given a pool of deployments, the order to try them in.

A `Pool` precomputes, once per config, every order a strategy can return (each deployment first,
then the rest by priority, then the pool's failover tail), so a strategy only picks an index: no
sorting, no list building per request. A strategy is a function in `STRATEGIES` (data, not ifs).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Sequence

from clawdbot.routing.upstream import Deployment

Order = tuple[Deployment, ...]


class Pool:
    """Deployments a strategy chooses among (`deps`, by priority) and a failover `tail` tried after
    them whatever the strategy picked (e.g. untagged deployments after the tagged ones)."""

    __slots__ = ("by_cost", "cum", "deps", "firsts", "rotations", "rr", "tail", "total")

    def __init__(self, deps: Sequence[Deployment], tail: Sequence[Deployment] = ()) -> None:
        self.deps: Order = tuple(sorted(deps, key=lambda d: d.priority))  # stable: config order breaks ties
        self.tail: Order = tuple(d for d in sorted(tail, key=lambda d: d.priority) if d not in self.deps)
        ds, tail_ = self.deps, self.tail
        self.firsts: tuple[Order, ...] = tuple((d, *(x for x in ds if x is not d), *tail_) for d in ds)
        self.rotations: tuple[Order, ...] = tuple((*ds[i:], *ds[:i], *tail_) for i in range(len(ds)))
        cheapest = sorted(ds, key=lambda d: (sum(d.cost) if d.cost is not None else float("inf"), d.priority))
        self.by_cost: Order = (*cheapest, *tail_)
        weights = [max(0.0, d.weight) for d in ds]
        if not any(weights):
            weights = [1.0] * len(ds)
        acc, cum = 0.0, []
        for w in weights:
            acc += w
            cum.append(acc)
        self.cum = cum
        self.total = acc
        self.rr = 0

    @property
    def order(self) -> Order:
        """The priority order (strategy `ordered`)."""
        return self.firsts[0] if self.firsts else self.tail


Strategy = Callable[[Pool, bool, float], Order]


def ordered(pool: Pool, stream: bool, explore: float) -> Order:
    return pool.firsts[0]


def round_robin(pool: Pool, stream: bool, explore: float) -> Order:
    i = pool.rr
    pool.rr = i + 1 if i + 1 < len(pool.rotations) else 0
    return pool.rotations[i]


def weighted(pool: Pool, stream: bool, explore: float) -> Order:
    i = bisect.bisect_right(pool.cum, random.random() * pool.total)
    return pool.firsts[min(i, len(pool.firsts) - 1)]


def least_inflight(pool: Pool, stream: bool, explore: float) -> Order:
    deps = pool.deps
    n = len(deps)
    start = pool.rr  # ties go round, not always to the first
    pool.rr = start + 1 if start + 1 < n else 0
    best, best_load = start, deps[start].upstream.stats.in_flight
    for k in range(1, n):
        i = (start + k) % n
        load = deps[i].upstream.stats.in_flight
        if load < best_load:
            best, best_load = i, load
    return pool.firsts[best]


def latency(pool: Pool, stream: bool, explore: float) -> Order:
    """The lowest moving average of time to first token (streams) or total time (others); a share
    `explore` of requests goes to a random deployment, so one that recovered is measured again.
    A deployment never measured scores 0: it is tried first."""
    deps = pool.deps
    if explore and random.random() < explore:
        return pool.firsts[random.randrange(len(deps))]
    best, best_score = 0, float("inf")
    for i, d in enumerate(deps):
        stats = d.upstream.stats
        score = (stats.ewma_ttft_ms if stream else stats.ewma_ms) or 0.0
        if score < best_score:
            best, best_score = i, score
    return pool.firsts[best]


def cost(pool: Pool, stream: bool, explore: float) -> Order:
    """Cheapest first (input + output price per million tokens); the router skips unhealthy ones,
    so the first it sends to is the cheapest healthy deployment."""
    return pool.by_cost


STRATEGIES: dict[str, Strategy] = {
    "ordered": ordered,
    "round_robin": round_robin,
    "weighted": weighted,
    "least_inflight": least_inflight,
    "latency": latency,
    "cost": cost,
    "rules": ordered,  # the rules pick the pool; inside it, priority order
}
