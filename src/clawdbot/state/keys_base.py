"""The tenancy store contract: teams, users, virtual keys and the audit log of admin actions.

Every change takes the acting principal and writes its audit entry in the same transaction, so no
admin action can happen without its record. Records never carry a key, nor its hash: only the
lookup takes the hash."""

from __future__ import annotations

from typing import Any, Literal, Protocol

import msgspec

Period = Literal["day", "month", "total"]
Kind = Literal["key", "user", "team"]
PageCursor = tuple[int, str]  # (created_at, id) of a page's last record: the next page starts after it


class Limits(msgspec.Struct, kw_only=True):
    """What a key, user or team may use. None: no limit at this level."""

    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_usd: float | None = None
    budget_period: Period | None = None


class TeamRecord(Limits, kw_only=True):
    id: str
    name: str
    metadata: dict[str, Any] | None = None
    created_at: int = 0  # ms since the epoch
    updated_at: int = 0


class UserRecord(Limits, kw_only=True):
    id: str
    name: str
    team_id: str | None = None
    metadata: dict[str, Any] | None = None
    created_at: int = 0
    updated_at: int = 0


class KeyRecord(Limits, kw_only=True):
    id: str
    hint: str  # "sk-cb-AbCd...wXyZ": enough to tell keys apart, never enough to use one
    name: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    allowed_models: list[str] | None = None  # None: every model
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    expires_at: int | None = None  # ms since the epoch
    revoked_at: int | None = None
    created_at: int = 0
    updated_at: int = 0


class AuditRecord(msgspec.Struct, kw_only=True):
    id: str
    at: int
    actor: str
    action: str  # "<kind>.<verb>": key.create, key.update, key.revoke, user.delete, ...
    target_type: str
    target_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


Record = KeyRecord | UserRecord | TeamRecord


class AuditFilter(msgspec.Struct, kw_only=True, frozen=True):
    """What the audit log is searched by (all must match): who, the action, the target, and the
    oldest time (ms; the newest is the page's `before`)."""

    actor: str | None = None
    action: str | None = None  # exactly (key.revoke), or every action of a kind (key.*)
    target_type: str | None = None  # key, user, team, config
    target_id: str | None = None
    since: int | None = None


class Conflict(Exception):
    """A unique name is taken, or a referenced user/team does not exist."""


class KeyStore(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def create_key(self, actor: str, key: KeyRecord, key_hash: str) -> KeyRecord: ...

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        """Revoked and expired keys too: the caller says why a key is refused."""
        ...

    async def revoke_key(self, actor: str, key_id: str) -> KeyRecord | None: ...

    async def get(self, kind: Kind, id: str) -> Record | None: ...

    async def list_records(self, kind: Kind, limit: int = 100, offset: int = 0) -> list[Record]:
        """Newest first."""
        ...

    async def page(self, kind: Kind, limit: int = 100, *, offset: int = 0, after: PageCursor | None = None,
                   match: str | None = None) -> tuple[list[Record], PageCursor | None]:
        """Newest first (by created_at, then id), at most `limit` (the store's page, 500, at most);
        `after`: the records after that cursor (keyset paging: a record created meanwhile neither
        shifts nor repeats a page); `match`: only those whose name, id (or a key's hint) holds it,
        case-insensitive. The cursor of the next page, or None when this one is the last."""
        ...

    async def create(self, actor: str, record: UserRecord | TeamRecord) -> Record: ...

    async def update(self, actor: str, kind: Kind, id: str, changes: dict[str, Any]) -> Record | None:
        """`changes` holds column values already validated by the caller (no id, hash or times)."""
        ...

    async def delete(self, actor: str, kind: Kind, id: str) -> bool:
        """Users and teams; keys are revoked, never deleted, so the audit log keeps naming them."""
        ...

    async def audit(self, limit: int = 100, before: int | None = None,
                    where: AuditFilter | None = None) -> list[AuditRecord]:
        """Newest first; `before` pages by `at`; `where` filters."""
        ...

    async def note(self, actor: str, action: str, target: str | None, before: dict[str, Any] | None,
                   after: dict[str, Any] | None) -> None:
        """An audit entry for a change made outside the store (the control panel's config edits:
        action `config.<verb>`)."""
        ...
