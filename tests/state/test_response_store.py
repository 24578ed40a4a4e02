"""The stored-response stores (POST /v1/responses with store): SQL on a real SQLite file and a real
PostgreSQL database (fresh per test, as in test_chat_store.py) and the in-process one, held to the
same contract: one owner never sees another's, expired responses are gone, at most `max_per_owner`
per owner (the oldest go), and what is stored comes back equal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from clawdbot.state.responses_base import ResponseStore, StoredResponse
from clawdbot.state.responses_memory import MemoryResponseStore
from clawdbot.state.responses_sql import SqlResponseStore
from tests.state import test_chat_store as chat_tests
from tests.state.stores import backends

postgres = chat_tests.postgres

T = TypeVar("T")
NOW = 1_780_000_000_000
HOUR = 3_600_000


def rec(id: str, owner: str = "k_a", at: int = NOW, ttl: int = HOUR) -> StoredResponse:
    return StoredResponse(id=id, owner=owner, created_at=at, expires_at=at + ttl,
                          response={"id": id, "object": "response", "output": [{"type": "message", "n": [1, 2]}]},
                          input_items=[{"id": "msg_1", "type": "message", "content": [{"text": "hé"}]}],
                          conversation=[{"role": "user", "content": "hé"}, {"role": "assistant", "content": "ok"}])


Run = Callable[[Callable[[ResponseStore], Awaitable[Any]]], Any]


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Run]:
    yield from backends(request, tmp_path, MemoryResponseStore, SqlResponseStore)


def test_round_trip_and_owners(run: Run) -> None:
    async def body(store: ResponseStore) -> None:
        await store.put(rec("resp_1"), 100)
        got = await store.get("k_a", "resp_1", NOW)
        assert got == rec("resp_1")
        assert await store.get("k_b", "resp_1", NOW) is None  # another key's
        assert await store.delete("k_b", "resp_1") is False
        assert await store.delete("k_a", "resp_1") is True
        assert await store.get("k_a", "resp_1", NOW) is None
        assert await store.delete("k_a", "resp_1") is False

    run(body)


def test_expired_ones_are_gone(run: Run) -> None:
    async def body(store: ResponseStore) -> None:
        await store.put(rec("resp_old", ttl=10), 100)
        assert await store.get("k_a", "resp_old", NOW + 9) is not None
        assert await store.get("k_a", "resp_old", NOW + 10) is None
        await store.put(rec("resp_new", at=NOW + 20), 100)  # a later write also clears the expired
        assert await store.get("k_a", "resp_old", NOW) is None
        assert await store.get("k_a", "resp_new", NOW + 20) is not None

    run(body)


def test_at_most_max_per_owner(run: Run) -> None:
    async def body(store: ResponseStore) -> None:
        await store.put(rec("resp_b0", owner="k_b"), 2)
        for i in range(4):
            await store.put(rec(f"resp_{i}", at=NOW + i), 2)
        kept = [i for i in range(4) if await store.get("k_a", f"resp_{i}", NOW) is not None]
        assert kept == [2, 3]  # the newest two
        assert await store.get("k_b", "resp_b0", NOW) is not None  # another owner's count is its own

    run(body)
