"""SpendStore on SQL (SQLite or PostgreSQL): the spend writer's sink, the admin spend report and the
sums that seed budgets.

`write` is one INSERT ... ON CONFLICT (id) DO NOTHING for the whole batch, in one transaction: the
writer delivers at least once, and the primary key makes it exactly once. A report is one
statement: the groups, and the totals over all of them as window sums computed before LIMIT, so the
total and the rows come from the same snapshot."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from clawdbot.state.spend_base import (
    MAX_REPORT_ROWS,
    GroupBy,
    Scope,
    SpendRecord,
    SpendReport,
    SpendRow,
    SpendTotals,
)
from clawdbot.state.sql import DatabaseUser
from clawdbot.state.tables import spend

GROUP_COLUMNS: dict[str, sa.Column[Any]] = {
    "key": spend.c.key_id, "user": spend.c.user_id, "team": spend.c.team_id,
    "model": spend.c.model, "day": spend.c.day, "service": spend.c.service,
}
SCOPE_COLUMNS: dict[str, sa.Column[Any]] = {"key": spend.c.key_id, "user": spend.c.user_id, "team": spend.c.team_id}
SUMMED = ("prompt_tokens", "completion_tokens", "cost")


def utc_day(at_ms: int) -> str:
    return dt.datetime.fromtimestamp(at_ms // 1000, tz=dt.UTC).strftime("%Y-%m-%d")


def _row(rec: SpendRecord) -> dict[str, Any]:
    return {"id": rec.id, "at": rec.at_ms, "day": utc_day(rec.at_ms), "model": rec.model, "service": rec.service,
            "key_id": rec.key_id, "user_id": rec.user_id, "team_id": rec.team_id, "request_id": rec.request_id,
            "prompt_tokens": rec.prompt_tokens, "completion_tokens": rec.completion_tokens, "cost": rec.cost}


def _window(since_ms: int | None, until_ms: int | None) -> list[sa.ColumnElement[bool]]:
    where = []
    if since_ms is not None:
        where.append(spend.c.at >= since_ms)
    if until_ms is not None:
        where.append(spend.c.at < until_ms)
    return where


def _insert_ignoring_duplicates(dialect: str) -> sa.Insert:
    if dialect == "postgresql":
        return postgresql.insert(spend).on_conflict_do_nothing(index_elements=[spend.c.id])
    return sqlite.insert(spend).on_conflict_do_nothing(index_elements=[spend.c.id])


def report_query(group_by: GroupBy, where: list[sa.ColumnElement[bool]], limit: int) -> sa.Select[Any]:
    group = GROUP_COLUMNS[group_by]
    sums = {name: sa.func.sum(spend.c[name]) for name in SUMMED}
    columns = [group.label("group"), sa.func.count().label("requests"), *(s.label(n) for n, s in sums.items())]
    # Window sums over all groups: evaluated after GROUP BY and before LIMIT, so the totals count
    # every group, also those the limit leaves out.
    columns += [sa.func.sum(sa.func.count()).over().label("total_requests"),
                *(sa.func.sum(s).over().label(f"total_{n}") for n, s in sums.items()),
                sa.func.count().over().label("groups")]
    # By cost; ties, and the NULL group (last on both databases), in a stable order.
    by_cost: list[sa.ColumnElement[Any]] = [sums["cost"].desc(), group.is_(None), group.asc()]
    order = [group.asc()] if group_by == "day" else by_cost
    query = sa.select(*columns).where(*where).group_by(group).order_by(*order)
    return query.limit(min(max(limit, 1), MAX_REPORT_ROWS))


def _report(rows: list[sa.RowMapping]) -> SpendReport:
    # SUM of a BIGINT is NUMERIC on PostgreSQL (a Decimal here): every number goes through int().
    if not rows:
        return SpendReport(rows=[], total=SpendTotals(), groups=0)
    first = rows[0]
    total = SpendTotals(requests=int(first["total_requests"]), prompt_tokens=int(first["total_prompt_tokens"]),
                        completion_tokens=int(first["total_completion_tokens"]), cost=int(first["total_cost"]))
    out = [SpendRow(group=r["group"], requests=int(r["requests"]), prompt_tokens=int(r["prompt_tokens"]),
                    completion_tokens=int(r["completion_tokens"]), cost=int(r["cost"])) for r in rows]
    return SpendReport(rows=out, total=total, groups=int(first["groups"]))


class SqlSpendStore(DatabaseUser):
    async def write(self, records: list[SpendRecord]) -> None:
        await self.start()
        if not records:
            return
        async with self.database.write() as conn:
            await conn.execute(_insert_ignoring_duplicates(conn.dialect.name), [_row(r) for r in records])

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
        await self.start()
        if group_by not in GROUP_COLUMNS:
            raise ValueError(f"cannot group spend by {group_by!r}")
        where = _window(since_ms, until_ms)
        filters = ((spend.c.key_id, key_id), (spend.c.user_id, user_id), (spend.c.team_id, team_id),
                   (spend.c.model, model))
        where += [column == value for column, value in filters if value is not None]
        async with self.database.read() as conn:
            rows = list((await conn.execute(report_query(group_by, where, limit))).mappings())
        return _report(rows)

    async def spent(self, scope: Scope, id: str, since_ms: int | None = None) -> int:
        await self.start()
        if scope not in SCOPE_COLUMNS:
            raise ValueError(f"no spend scope {scope!r}")
        query = (sa.select(sa.func.coalesce(sa.func.sum(spend.c.cost), 0))
                 .where(SCOPE_COLUMNS[scope] == id, *_window(since_ms, None)))
        async with self.database.read() as conn:
            return int((await conn.execute(query)).scalar_one())
