"""SqlSpendStore on a real SQLite file and a real PostgreSQL database (fresh per test, as in
test_chat_store.py): idempotent batches, reports by every dimension checked against a plain Python
aggregation of the same records, UTC day boundaries, half-open time windows, and the budget sums."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from sqlalchemy.exc import IntegrityError

from clawdbot.state.lazy import lazy_spend_store
from clawdbot.state.spend_base import GROUPS, GroupBy, SpendRecord, SpendRow, SpendTotals
from clawdbot.state.spend_sql import SqlSpendStore
from clawdbot.state.sql import Database
from tests.state import test_chat_store as chat_tests
from tests.state.stores import run_with_store
from tests.state.test_chat_store import scalar

# The same fresh SQLite file / PostgreSQL database per test as the chat store's tests.
postgres, url = chat_tests.postgres, chat_tests.url

T = TypeVar("T")
DAY = 86_400_000
NOV_20 = int(dt.datetime(2026, 11, 20, tzinfo=dt.UTC).timestamp() * 1000)  # 00:00:00.000 UTC


def with_store(url: str, body: Callable[[SqlSpendStore], Awaitable[T]]) -> T:
    return run_with_store(lambda: SqlSpendStore(Database(url)), body)


def rec(id: str, at: int = NOV_20, cost: int = 100, **kw: Any) -> SpendRecord:
    fields: dict[str, Any] = {"model": "m-a", "prompt_tokens": 10, "completion_tokens": 5, "key_id": "k_a",
                              "user_id": "u_a", "team_id": "t_a", "service": "oa", "request_id": f"req-{id}", **kw}
    return SpendRecord(id=id, at_ms=at, cost=cost, **fields)


# Every dimension varies, some records lack one (no team, no service, the master key's no key),
# two keys tie on cost, and the records span three UTC days, one a millisecond before midnight.
RECORDS = [
    rec("sp_1", NOV_20 + 1_000, 1_500_000, prompt_tokens=1000, completion_tokens=200),
    rec("sp_2", NOV_20 + DAY - 1, 250_000, model="m-b", key_id="k_b", user_id="u_b", service="ol"),
    rec("sp_3", NOV_20 + DAY, 250_000, model="m-b", key_id="k_c", user_id="u_b", team_id=None),
    rec("sp_4", NOV_20 + DAY + 5, 40, key_id=None, user_id=None, team_id=None, service=None),
    rec("sp_5", NOV_20 + 2 * DAY + 7, 3_000_000, model="m-c", key_id="k_b", team_id="t_b", completion_tokens=900),
    rec("sp_6", NOV_20 - 1, 7, model="m-c", key_id="k_d", prompt_tokens=3),  # Nov 19, 23:59:59.999
]
FIELD = {"key": "key_id", "user": "user_id", "team": "team_id", "model": "model", "service": "service"}


def day_of(at_ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at_ms / 1000))


def expected(records: list[SpendRecord], group_by: GroupBy) -> list[SpendRow]:
    """The report computed in Python, ordered as the store promises."""
    groups: dict[str | None, list[SpendRecord]] = {}
    for r in records:
        key = day_of(r.at_ms) if group_by == "day" else getattr(r, FIELD[group_by])
        groups.setdefault(key, []).append(r)
    rows = [SpendRow(group=g, requests=len(rs), prompt_tokens=sum(r.prompt_tokens for r in rs),
                     completion_tokens=sum(r.completion_tokens for r in rs), cost=sum(r.cost for r in rs))
            for g, rs in groups.items()]
    if group_by == "day":
        return sorted(rows, key=lambda row: str(row.group))
    return sorted(rows, key=lambda row: (-row.cost, row.group is None, row.group or ""))


def totals(records: list[SpendRecord]) -> SpendTotals:
    return SpendTotals(requests=len(records), prompt_tokens=sum(r.prompt_tokens for r in records),
                       completion_tokens=sum(r.completion_tokens for r in records),
                       cost=sum(r.cost for r in records))


def test_a_replayed_batch_is_counted_once(url: str) -> None:
    async def body(s: SqlSpendStore) -> None:
        await s.write(RECORDS[:3])
        await s.write(RECORDS[:3])  # the writer replaying a batch the database already took
        await s.write([RECORDS[2], RECORDS[3], RECORDS[3]])  # overlapping, and a repeat within one batch
        await s.write([])
        report = await s.report("key")
        assert report.total == totals(RECORDS[:4])
        assert await scalar(url, "SELECT count(*) FROM spend") == 4

    with_store(url, body)


def test_two_writers_delivering_the_same_batch_at_once(url: str) -> None:
    async def main() -> None:
        stores = [SqlSpendStore(Database(url)) for _ in range(2)]
        for s in stores:
            await s.start()
        try:
            await asyncio.gather(*(s.write(RECORDS) for s in stores))
            assert (await stores[0].report("model")).total == totals(RECORDS)
        finally:
            for s in stores:
                await s.close()

    asyncio.run(main())


def test_a_batch_is_all_or_nothing(url: str) -> None:
    async def body(s: SqlSpendStore) -> None:
        broken = rec("sp_bad", prompt_tokens=None)  # NOT NULL: the database refuses this row
        with pytest.raises(IntegrityError):
            await s.write([RECORDS[0], broken])
        assert (await s.report("key")).total == SpendTotals()
        await s.write([RECORDS[0]])
        assert (await s.report("key")).total == totals(RECORDS[:1])

    with_store(url, body)


def test_the_row_is_stored_as_recorded(url: str) -> None:
    async def body(s: SqlSpendStore) -> None:
        await s.write([RECORDS[1]])

    with_store(url, body)
    row = asyncio.run(scalar(url, "SELECT id || '|' || at || '|' || day || '|' || model || '|' || service || '|' || "
                                  "key_id || '|' || user_id || '|' || team_id || '|' || request_id || '|' || "
                                  "prompt_tokens || '|' || completion_tokens || '|' || cost FROM spend"))
    r = RECORDS[1]
    assert row == "|".join(map(str, (r.id, r.at_ms, "2026-11-20", r.model, r.service, r.key_id, r.user_id,
                                     r.team_id, r.request_id, r.prompt_tokens, r.completion_tokens, r.cost)))


@pytest.mark.parametrize("group_by", GROUPS)
def test_report_by_each_dimension(url: str, group_by: GroupBy) -> None:
    async def body(s: SqlSpendStore) -> None:
        await s.write(RECORDS)
        report = await s.report(group_by)
        assert report.rows == expected(RECORDS, group_by)
        assert report.total == totals(RECORDS)
        assert report.groups == len(report.rows)

    with_store(url, body)


def test_report_orders_by_cost_then_group_with_the_missing_group_last(url: str) -> None:
    async def body(s: SqlSpendStore) -> None:
        await s.write(RECORDS)
        by_key = [(r.group, r.cost) for r in (await s.report("key")).rows]
        assert by_key == [("k_b", 3_250_000), ("k_a", 1_500_000), ("k_c", 250_000), (None, 40), ("k_d", 7)]
        await s.write([rec("sp_t1", cost=1, key_id="k_z"), rec("sp_t2", cost=1, key_id=None),
                       rec("sp_t3", cost=1, key_id="k_y")])
        ties = await s.report("key", since_ms=NOV_20, until_ms=NOV_20 + 1)
        assert [r.group for r in ties.rows] == ["k_y", "k_z", None]

    with_store(url, body)


def test_days_are_utc_calendar_days(url: str) -> None:
    async def body(s: SqlSpendStore) -> None:
        await s.write(RECORDS)
        days = {r.group: r.requests for r in (await s.report("day")).rows}
        # 23:59:59.999 belongs to its own day, 00:00:00.000 to the next, whatever the local time zone
        assert days == {"2026-11-19": 1, "2026-11-20": 2, "2026-11-21": 2, "2026-11-22": 1}

    with_store(url, body)


def test_since_is_inclusive_and_until_exclusive(url: str) -> None:
    async def body(s: SqlSpendStore) -> None:
        await s.write(RECORDS)
        nov_21 = await s.report("day", since_ms=NOV_20 + DAY, until_ms=NOV_20 + 2 * DAY)
        assert [(r.group, r.requests) for r in nov_21.rows] == [("2026-11-21", 2)]
        assert nov_21.total == totals([RECORDS[2], RECORDS[3]])
        # consecutive windows count every record exactly once
        cuts = [NOV_20 - DAY, NOV_20, NOV_20 + DAY - 1, NOV_20 + DAY, NOV_20 + 3 * DAY]
        parts = [await s.report("key", since_ms=a, until_ms=b) for a, b in itertools.pairwise(cuts)]
        assert sum(p.total.requests for p in parts) == len(RECORDS)
        assert sum(p.total.cost for p in parts) == totals(RECORDS).cost
        assert (await s.report("key", since_ms=NOV_20 + 3 * DAY)).rows == []

    with_store(url, body)


def test_filters_combine(url: str) -> None:
    async def body(s: SqlSpendStore) -> None:
        await s.write(RECORDS)
        by_model = await s.report("model", key_id="k_b")
        assert by_model.rows == expected([RECORDS[1], RECORDS[4]], "model")
        only = await s.report("day", user_id="u_b", model="m-b", team_id="t_a")
        assert only.rows == expected([RECORDS[1]], "day")
        assert (await s.report("key", key_id="k_missing")).total == SpendTotals()
        since = await s.report("user", user_id="u_a", since_ms=NOV_20)
        assert since.rows == expected([RECORDS[0], RECORDS[4]], "user")

    with_store(url, body)


def test_limit_cuts_rows_but_not_totals(url: str) -> None:
    async def body(s: SqlSpendStore) -> None:
        await s.write(RECORDS)
        report = await s.report("key", limit=2)
        assert report.rows == expected(RECORDS, "key")[:2]
        assert report.total == totals(RECORDS)
        assert report.groups == 5
        assert (await s.report("key", limit=0)).rows == expected(RECORDS, "key")[:1]  # at least one row

    with_store(url, body)


def test_spent_sums_for_budgets(url: str) -> None:
    big = 4_000_000_000_000  # 4 million USD in micro-dollars: twice that overflows a 32-bit integer

    async def body(s: SqlSpendStore) -> None:
        assert await s.spent("key", "k_b") == 0
        await s.write(RECORDS)
        assert await s.spent("key", "k_b") == 3_250_000
        assert await s.spent("key", "k_b", NOV_20 + DAY) == 3_000_000
        assert await s.spent("key", "k_b", NOV_20 + DAY - 1) == 3_250_000  # since is inclusive
        assert await s.spent("user", "u_a", NOV_20) == 4_500_000
        assert await s.spent("team", "t_a") == 1_750_007
        assert await s.spent("team", "t_missing") == 0
        await s.write([rec("sp_big1", cost=big, key_id="k_big"), rec("sp_big2", cost=big, key_id="k_big")])
        assert await s.spent("key", "k_big") == 2 * big
        assert (await s.report("key", key_id="k_big")).rows[0].cost == 2 * big
        with pytest.raises(ValueError):
            await s.spent("model", "m-a")  # type: ignore[arg-type]

    with_store(url, body)


def test_the_lazy_store_opens_at_first_use(url: str) -> None:
    async def main() -> None:
        store = lazy_spend_store(url)
        await store.start()
        assert not store.opened  # type: ignore[attr-defined]
        try:
            await store.write(RECORDS)
            assert store.opened  # type: ignore[attr-defined]
            assert await store.spent("team", "t_b") == 3_000_000
            assert (await store.report("service")).rows == expected(RECORDS, "service")
        finally:
            await store.close()

    asyncio.run(main())
    with pytest.raises(ValueError):
        lazy_spend_store("mysql://x/y")
