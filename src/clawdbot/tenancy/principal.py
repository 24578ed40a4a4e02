"""Who made a request, and what its key allows. Built once per key and cached (authn.py), so the
hot path reads attributes, never the database."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from clawdbot.state.keys_base import KeyRecord, Limits, Period, TeamRecord, UserRecord

Kind = Literal["master", "admin", "key", "anonymous"]


class Quota(msgspec.Struct, frozen=True):
    """The limits of one level a request is counted at: its key, the key's user, their team.
    Each level is enforced on its own, so the tightest one decides (tenancy/metering.py)."""

    scope: Literal["key", "user", "team"]
    id: str
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_usd: float | None = None
    budget_period: Period | None = None

    @property
    def empty(self) -> bool:
        return (self.rpm is None and self.tpm is None and self.max_parallel is None
                and self.budget_usd is None)


def quota(scope: Literal["key", "user", "team"], id: str, limits: Limits) -> Quota:
    return Quota(scope, id, limits.rpm, limits.tpm, limits.max_parallel, limits.budget_usd, limits.budget_period)


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    kind: Kind
    key_id: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    allowed_models: frozenset[str] | None = None  # None: every model
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_usd: float | None = None
    budget_period: Period | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = {}
    expires_at: int | None = None  # ms since the epoch
    # the key's, its user's and their team's limits, those that set any (metering reads these)
    quotas: tuple[Quota, ...] = ()

    @property
    def name(self) -> str:
        """What RequestContext.principal (and so the access log and routing hooks) shows."""
        return self.key_id or self.kind

    @property
    def is_admin(self) -> bool:
        return self.kind in ("master", "admin")

    def may_use(self, model: str | None) -> bool:
        return self.allowed_models is None or (model is not None and model in self.allowed_models)


MASTER = Principal(kind="master")
ANONYMOUS = Principal(kind="anonymous")


def from_key(key: KeyRecord, user: UserRecord | None = None, team: TeamRecord | None = None) -> Principal:
    """`user` and `team` are the key's owners, as found in the store (the team: the key's own, else
    its user's)."""
    meta = key.metadata or {}
    levels = [quota("key", key.id, key)]
    if user is not None:
        levels.append(quota("user", user.id, user))
    if team is not None:
        levels.append(quota("team", team.id, team))
    return Principal(
        kind="admin" if meta.get("role") == "admin" else "key",
        key_id=key.id,
        user_id=key.user_id,
        team_id=key.team_id or (user.team_id if user is not None else None),
        allowed_models=frozenset(key.allowed_models) if key.allowed_models is not None else None,
        rpm=key.rpm,
        tpm=key.tpm,
        max_parallel=key.max_parallel,
        budget_usd=key.budget_usd,
        budget_period=key.budget_period,
        tags=tuple(key.tags or ()),
        metadata=meta,
        expires_at=key.expires_at,
        quotas=tuple(q for q in levels if not q.empty),
    )
