"""Who shares a full service's wait queue (`limits.fair_share`): a request's tenant and its weight.
The queue that serves them (least usage lately, for the weight, first) is routing/limiter.py.

The tenant is a string already on the request: the key id (`master` for the master key,
`anonymous` when no master key is configured), or that key's user or team id. A key with no user
(or team) is a tenant of its own under `by: user` (`by: team`), so a key nobody filed under a team
does not share one turn with every other such key."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from clawdbot.config.schema import FairShare as FairShareConfig
from clawdbot.core.context import RequestContext

ANONYMOUS = "anonymous"  # the one tenant of a gateway without a master key


def _key(ctx: RequestContext) -> str:
    return ctx.principal or ANONYMOUS


def _user(ctx: RequestContext) -> str:
    return getattr(ctx.identity, "user_id", None) or ctx.principal or ANONYMOUS


def _team(ctx: RequestContext) -> str:
    who = ctx.identity
    return getattr(who, "team_id", None) or getattr(who, "user_id", None) or ctx.principal or ANONYMOUS


def _one(ctx: RequestContext) -> str:
    return ""


TENANT: dict[str | None, Callable[[RequestContext], str]] = {"key": _key, "user": _user, "team": _team, None: _one}


class FairShare:
    """The policy a Limiter's queue follows. `quantum(t)` is t's weight scaled so that the smallest
    weight configured is 1 (fractional weights keep their ratios: 0.5 and 1 become 1 and 2): a slot
    adds 1 / quantum to its tenant's usage, at most 1, whatever the weights' scale."""

    __slots__ = ("_default", "_quanta", "by", "max_per_tenant", "tenant")

    def __init__(self, by: str | None, weights: Mapping[str, float] | None = None, default_weight: float = 1.0,
                 max_per_tenant: int | None = None) -> None:
        weights = dict(weights or {})
        unit = min([default_weight, *weights.values()])
        self.by = by
        self.tenant: Callable[[RequestContext], str] = TENANT[by]
        self._quanta = {t: w / unit for t, w in weights.items()}
        self._default = default_weight / unit
        self.max_per_tenant = max_per_tenant

    def quantum(self, tenant: str) -> float:
        return self._quanta.get(tenant, self._default)


ONE_QUEUE = FairShare(None)  # fair share off: every request is the same tenant, the queue a FIFO


def fair_share(cfg: FairShareConfig) -> FairShare:
    if not cfg.enabled:
        return ONE_QUEUE
    return FairShare(cfg.by, cfg.weights, cfg.default_weight, cfg.max_queue_per_tenant)
