"""The request log's stores: SQL on a real SQLite file and a real PostgreSQL database (fresh per
test) and the in-process one, held to one contract: records come back as written, newest first,
filtered, paged by cursor without gaps or repeats; retention and the row budget actually delete,
oldest first, in batches; bodies only from `get`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from clawdbot.state.request_log_base import RequestLogStore, RequestQuery, RequestRecord, Row, to_row
from clawdbot.state.request_log_memory import MemoryRequestLogStore
from clawdbot.state.request_log_sql import SqlRequestLogStore
from tests.state import test_chat_store as chat_tests
from tests.state.stores import backends

postgres = chat_tests.postgres

NOW = 1_780_000_000_000
HOUR = 3_600_000
Run = Callable[[Callable[[RequestLogStore], Awaitable[Any]]], Any]


def rec(id: str, at: int = NOW, **kw: Any) -> RequestRecord:
    fields: dict[str, Any] = {"method": "POST", "path": "/v1/chat/completions", "status": 200, "latency_ms": 12.5,
                              "model": "chat", "service": "oa", "upstream_model": "mock-a", "key_id": "k_a",
                              "principal": "k_a", "prompt_tokens": 5, "completion_tokens": 7, "cost_micros": 42,
                              "attempts": [{"service": "oa", "model": "mock-a", "ok": True, "status": 200, "ms": 3.5}],
                              "plugins": ["pii: masked 1 item"]}
    fields.update(kw)
    return RequestRecord(id=id, at=at, **fields)


def rows(*records: RequestRecord) -> list[Row]:
    return [to_row(r) for r in records]


def bare(r: RequestRecord) -> RequestRecord:
    return msgspec.structs.replace(r, seq=None, request_body=None, response_body=None)


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Run]:
    yield from backends(request, tmp_path, lambda: MemoryRequestLogStore(1000), SqlRequestLogStore)


def test_round_trip_with_and_without_bodies(run: Run) -> None:
    async def body(store: RequestLogStore) -> None:
        full = rec("r1", request_body='{"model": "chat"}', response_body='{"choices": []}', body_truncated=True,
                   stream=True, ttft_ms=3.25, error="boom", error_code="upstream_error", cached=True,
                   tokens_estimated=True, user_id="u_1", team_id="t_1")
        await store.write(rows(full, rec("r2", at=NOW + 1, cost_micros=None, attempts=None, plugins=None)))
        got = await store.get("r1")
        assert got is not None and got.seq is not None
        assert got == msgspec.structs.replace(full, seq=got.seq)
        page = await store.query(RequestQuery())
        assert [r.id for r in page.records] == ["r2", "r1"] and page.next_cursor is None
        assert page.records[1].request_body is None and page.records[1].response_body is None  # lists: no bodies
        assert bare(page.records[1]) == bare(full)
        assert page.records[0].cost_micros is None and page.records[0].attempts is None
        assert await store.get("nope") is None

    run(body)


def test_the_same_request_id_twice_get_returns_the_newest(run: Run) -> None:
    async def body(store: RequestLogStore) -> None:
        await store.write(rows(rec("dup", status=500), rec("dup", at=NOW + 5, status=200)))
        got = await store.get("dup")
        assert got is not None and got.status == 200
        assert len((await store.query(RequestQuery())).records) == 2

    run(body)


def test_filters(run: Run) -> None:
    async def body(store: RequestLogStore) -> None:
        await store.write(rows(
            rec("a", NOW, status=200, latency_ms=10.0),
            rec("b", NOW + 1, status=429, key_id="k_b", latency_ms=500.0),
            rec("c", NOW + 2, status=502, model="other", latency_ms=2000.0),
            rec("d", NOW + 3, status=499, latency_ms=50.0),
            rec("e", NOW + 4, status=0, latency_ms=1.0),
        ))

        async def ids(**kw: Any) -> list[str]:
            return [r.id for r in (await store.query(RequestQuery(**kw))).records]

        assert await ids() == ["e", "d", "c", "b", "a"]
        assert await ids(since=NOW + 1, until=NOW + 3) == ["c", "b"]
        assert await ids(key_id="k_b") == ["b"]
        assert await ids(model="other") == ["c"]
        assert await ids(status=429) == ["b"]
        assert await ids(status_class=4) == ["d", "b"]
        assert await ids(status_class=5) == ["c"]
        assert await ids(errors=True) == ["e", "d", "c", "b"]
        assert await ids(min_latency_ms=500.0) == ["c", "b"]
        assert await ids(min_latency_ms=100.0, status_class=5) == ["c"]

    run(body)


def test_cursor_pages_through_ties_without_gaps_or_repeats(run: Run) -> None:
    async def body(store: RequestLogStore) -> None:
        # 25 records, many sharing a millisecond: the cursor must still split between them
        await store.write(rows(*(rec(f"r{i:02d}", NOW + i // 4) for i in range(25))))
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await store.query(RequestQuery(limit=7, cursor=cursor))
            seen += [r.id for r in page.records]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert pages == 4 and len(seen) == 25 and len(set(seen)) == 25
        ats = [int(s[1:]) // 4 for s in seen]
        assert ats == sorted(ats, reverse=True)
        # filters hold across pages
        first = await store.query(RequestQuery(limit=2, since=NOW + 5))
        second = await store.query(RequestQuery(limit=2, since=NOW + 5, cursor=first.next_cursor))
        assert [r.id for r in first.records + second.records] == ["r24", "r23", "r22", "r21"]

    run(body)


def test_retention_deletes_in_batches(run: Run) -> None:
    async def body(store: RequestLogStore) -> None:
        await store.write(rows(*(rec(f"old{i}", NOW - 2 * HOUR + i) for i in range(23))))
        await store.write(rows(*(rec(f"new{i}", NOW + i) for i in range(4))))
        gone = await store.prune(older_than=NOW - HOUR, max_rows=1000, batch=5)
        assert gone == 23
        left = [r.id for r in (await store.query(RequestQuery())).records]
        assert left == ["new3", "new2", "new1", "new0"]
        assert await store.prune(older_than=NOW - HOUR, max_rows=1000, batch=5) == 0

    run(body)


def test_the_row_budget_keeps_the_newest(run: Run) -> None:
    async def body(store: RequestLogStore) -> None:
        for start in range(0, 40, 10):  # several batches: seq keeps rising
            await store.write(rows(*(rec(f"r{i:02d}", NOW + i) for i in range(start, start + 10))))
        gone = await store.prune(older_than=0, max_rows=12, batch=7)
        assert gone == 28
        left = [r.id for r in (await store.query(RequestQuery(limit=100))).records]
        assert left == [f"r{i:02d}" for i in range(39, 27, -1)]
        assert await store.prune(older_than=0, max_rows=12, batch=7) == 0
        # retention and the budget together
        assert await store.prune(older_than=NOW + 35, max_rows=3, batch=2) == 9
        assert [r.id for r in (await store.query(RequestQuery())).records] == ["r39", "r38", "r37"]

    run(body)
