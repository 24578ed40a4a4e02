"""Request bodies of the admin API (/admin/api/...). Unknown fields are errors; in a PATCH an absent
field is left alone and null clears it."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

from clawdbot.state.keys_base import Period

# Every number and string is bounded: a database integer is 64 bits, and a body is not storage.
Count = Annotated[int, Meta(ge=0, le=10**15)]
Usd = Annotated[float, Meta(ge=0, le=1e12)]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Ident = Annotated[str, Meta(min_length=1, max_length=128)]
Names = Annotated[list[Annotated[str, Meta(max_length=256)]], Meta(max_length=1000)]
EpochMs = Annotated[int, Meta(ge=0, le=253_402_300_799_999)]  # up to the year 9999
Seconds = Annotated[float, Meta(gt=0, le=100 * 366 * 86400)]  # up to a century


class Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in msgspec.structs.asdict(self).items() if v is not UNSET}


class LimitFields(Body, kw_only=True):
    rpm: Count | UnsetType | None = UNSET
    tpm: Count | UnsetType | None = UNSET
    max_parallel: Count | UnsetType | None = UNSET
    budget_usd: Usd | UnsetType | None = UNSET
    budget_period: Period | UnsetType | None = UNSET
    metadata: dict[str, Any] | UnsetType | None = UNSET


class KeyFields(LimitFields, kw_only=True):
    name: Name | UnsetType | None = UNSET
    user_id: Ident | UnsetType | None = UNSET
    team_id: Ident | UnsetType | None = UNSET
    allowed_models: Names | UnsetType | None = UNSET
    tags: Names | UnsetType | None = UNSET
    expires_at: EpochMs | UnsetType | None = UNSET  # ms since the epoch



def exact(regex: str) -> str:
    """`regex` matching whole strings, the same in Python (msgspec's check) and in ECMA-262 (JSON
    Schema's): Python's `$` also matches before a final newline, which the lookahead refuses."""
    return f"^(?:{regex})$(?!\\n)"


# A key brought from elsewhere (a migration, a bench): the prefix and 32-128 URL-safe characters.
ImportedKey = Annotated[str, Meta(pattern=exact("sk-cb-[A-Za-z0-9_-]{32,128}"))]


class KeyCreate(KeyFields, kw_only=True):
    expires_in: Seconds | UnsetType = UNSET  # seconds from now; instead of expires_at
    key: ImportedKey | UnsetType = UNSET  # default: 32 random bytes, made here


class UserCreate(LimitFields, kw_only=True):
    name: Name
    team_id: Ident | UnsetType | None = UNSET


class UserUpdate(LimitFields, kw_only=True):
    name: Name | UnsetType = UNSET
    team_id: Ident | UnsetType | None = UNSET


class TeamCreate(LimitFields, kw_only=True):
    name: Name


class TeamUpdate(LimitFields, kw_only=True):
    name: Name | UnsetType = UNSET
