"""The spend store contract: what requests cost, written in batches (idempotent by record id) and
read back as reports and as the sums that seed budgets. Amounts are integer micro-dollars.

Time bounds are half-open, in ms since the epoch: `since_ms <= at < until_ms`, so consecutive
windows never count a record twice."""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

GroupBy = Literal["key", "user", "team", "model", "day", "service"]
Scope = Literal["key", "user", "team"]
GROUPS: tuple[GroupBy, ...] = ("key", "user", "team", "model", "day", "service")
MAX_REPORT_ROWS = 1000


class SpendRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str  # unique per record: the sink's idempotency key
    at_ms: int
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: int  # micro-dollars
    key_id: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    request_id: str | None = None
    service: str | None = None  # the service that answered


class SpendTotals(msgspec.Struct, frozen=True, kw_only=True):
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: int = 0  # micro-dollars


class SpendRow(SpendTotals, frozen=True, kw_only=True):
    group: str | None  # None: records without that dimension (no key, no team, ...)


class SpendReport(msgspec.Struct, frozen=True, kw_only=True):
    rows: list[SpendRow]  # at most `limit`
    total: SpendTotals  # over every matching record, not only the rows returned
    groups: int  # how many groups there are in all (more than len(rows) when `limit` cut them)


class SpendStore(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, records: list[SpendRecord]) -> None:
        """All or nothing; a record whose id is already stored is skipped, so a batch may be replayed."""
        ...

    async def report(
        self,
        group_by: GroupBy,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        key_id: str | None = None,
        user_id: str | None = None,
        team_id: str | None = None,
        model: str | None = None,
        limit: int = 100,
    ) -> SpendReport:
        """Ordered by cost, highest first (by day: oldest first). `limit` is kept within 1..MAX_REPORT_ROWS."""
        ...

    async def spent(self, scope: Scope, id: str, since_ms: int | None = None) -> int:
        """Micro-dollars charged to `scope` `id` from `since_ms` (None: ever); 0 when nothing was."""
        ...
