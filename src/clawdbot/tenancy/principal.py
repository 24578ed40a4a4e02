"""Who made a request, and what its key allows. Built once per key and cached (authn.py), so the
hot path reads attributes, never the database."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from clawdbot.state.keys_base import KeyRecord, Period

Kind = Literal["master", "admin", "key", "anonymous"]


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


def from_key(key: KeyRecord) -> Principal:
    meta = key.metadata or {}
    return Principal(
        kind="admin" if meta.get("role") == "admin" else "key",
        key_id=key.id,
        user_id=key.user_id,
        team_id=key.team_id,
        allowed_models=frozenset(key.allowed_models) if key.allowed_models is not None else None,
        rpm=key.rpm,
        tpm=key.tpm,
        max_parallel=key.max_parallel,
        budget_usd=key.budget_usd,
        budget_period=key.budget_period,
        tags=tuple(key.tags or ()),
        metadata=meta,
        expires_at=key.expires_at,
    )
