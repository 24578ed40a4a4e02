"""SqlKeyStore on a real SQLite file and a real PostgreSQL database (fresh per test, as in
test_chat_store.py): keys by hash, revoke, users and teams, and the audit log written with each
change, redacted."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from clawdbot.state.keys_base import AuditFilter, Conflict, KeyRecord, TeamRecord, UserRecord
from clawdbot.state.keys_sql import SqlKeyStore, redact
from clawdbot.state.sql import Database
from tests.state import test_chat_store as chat_tests
from tests.state.stores import run_with_store
from tests.state.test_chat_store import scalar

# The same fresh SQLite file / PostgreSQL database per test as the chat store's tests.
postgres, url = chat_tests.postgres, chat_tests.url

T = TypeVar("T")
HASH = "ab" * 32


def with_store(url: str, body: Callable[[SqlKeyStore], Awaitable[T]]) -> T:
    return run_with_store(lambda: SqlKeyStore(Database(url)), body)


def key(**kw: Any) -> KeyRecord:
    return KeyRecord(**{"id": "k_one", "hint": "sk-cb-AAAA...ZZZZ", **kw})


def test_keys_by_hash_and_revoke(url: str) -> None:
    async def body(s: SqlKeyStore) -> None:
        made = await s.create_key("master", key(allowed_models=["a"], tags=["t"], rpm=5, budget_usd=1.5,
                                                budget_period="day", metadata={"priority": "high"}), HASH)
        assert made.created_at > 0
        found = await s.key_by_hash(HASH)
        assert found == made
        assert await s.key_by_hash("cd" * 32) is None
        revoked = await s.revoke_key("master", made.id)
        assert revoked is not None and revoked.revoked_at is not None
        again = await s.revoke_key("master", made.id)
        assert again == revoked  # a second revoke changes nothing
        assert (await s.key_by_hash(HASH)) == revoked
        assert await s.revoke_key("master", "k_missing") is None
        with pytest.raises(Conflict):
            await s.create_key("master", key(id="k_two"), HASH)  # the hash is unique

    with_store(url, body)


def test_users_teams_and_keys_crud(url: str) -> None:
    async def body(s: SqlKeyStore) -> None:
        team = await s.create("master", TeamRecord(id="t_1", name="research", budget_usd=10.0))
        user = await s.create("master", UserRecord(id="u_1", name="ada", team_id=team.id, rpm=3))
        with pytest.raises(Conflict):
            await s.create("master", UserRecord(id="u_2", name="ada"))
        with pytest.raises(Conflict):
            await s.create("master", UserRecord(id="u_3", name="bob", team_id="t_missing"))
        await s.create_key("master", key(user_id=user.id, team_id=team.id), HASH)
        with pytest.raises(Conflict):
            await s.create_key("master", key(id="k_2", user_id="u_missing"), "ef" * 32)
        changed = await s.update("master", "user", user.id, {"rpm": 9, "name": "ada l."})
        assert isinstance(changed, UserRecord) and changed.rpm == 9 and changed.name == "ada l."
        assert await s.get("user", user.id) == changed
        assert await s.update("master", "user", "u_missing", {"rpm": 1}) is None
        assert [r.id for r in await s.list_records("user")] == [user.id]
        assert await s.delete("master", "team", team.id)
        assert not await s.delete("master", "team", team.id)
        # ON DELETE SET NULL: the user and key outlive their team
        assert (await s.get("user", user.id)).team_id is None  # type: ignore[union-attr]
        assert (await s.key_by_hash(HASH)).team_id is None  # type: ignore[union-attr]
        with pytest.raises(ValueError):
            await s.delete("master", "key", "k_one")

    with_store(url, body)


def test_the_audit_log_is_filtered_and_takes_long_config_targets(url: str) -> None:
    """What the panel's Audit tab searches by; a config edit's target (`models.<name>`) is longer
    than a record id (migration 0008: PostgreSQL refused it before)."""
    long_target = "models." + "a-very-long-model-name-" * 6

    async def body(s: SqlKeyStore) -> None:
        await s.create_key("master", key(), HASH)
        await s.update("k_admin", "key", "k_one", {"rpm": 7})
        await s.note("master", "config.update", long_target, None, {"value": {"strategy": "ordered"}})
        everything = await s.audit()
        assert [e.action for e in everything] == ["config.update", "key.update", "key.create"]
        assert everything[0].target_id == long_target and everything[0].target_type == "config"

        async def actions(**kw: Any) -> list[str]:
            return [e.action for e in await s.audit(where=AuditFilter(**kw))]

        assert await actions(action="key.*") == ["key.update", "key.create"]
        assert await actions(action="key.update") == ["key.update"]
        assert await actions(action="ke_.*") == []  # a pattern character is matched as itself
        assert await actions(actor="k_admin") == ["key.update"]
        assert await actions(target_type="config") == ["config.update"]
        assert await actions(target_id=long_target) == ["config.update"]
        assert await actions(since=everything[1].at) == ["config.update", "key.update"]
        assert await actions(actor="master", target_id="k_one") == ["key.create"]

    with_store(url, body)


def test_every_change_is_audited_newest_first_and_redacted(url: str) -> None:
    async def body(s: SqlKeyStore) -> None:
        await s.create_key("master", key(metadata={"password": "hunter2", "nested": {"token": "t"}}), HASH)
        await s.update("k_admin", "key", "k_one", {"rpm": 7})
        await s.revoke_key("master", "k_one")
        entries = await s.audit()
        assert [e.action for e in entries] == ["key.revoke", "key.update", "key.create"]
        assert [e.actor for e in entries] == ["master", "k_admin", "master"]
        create = entries[2]
        assert create.before is None and create.after is not None
        assert create.after["metadata"] == {"password": "***", "nested": {"token": "***"}}
        assert entries[1].before is not None and entries[1].before["rpm"] is None
        assert entries[1].after is not None and entries[1].after["rpm"] == 7
        page = await s.audit(limit=1, before=entries[0].at)
        assert [e.id for e in page] == [entries[1].id]
        return None

    with_store(url, body)
    text = str(asyncio.run(scalar(url, "SELECT count(*) FROM audit_log WHERE after LIKE '%hunter2%'"
                                  if url.startswith("sqlite") else
                                  "SELECT count(*) FROM audit_log WHERE after::text LIKE '%hunter2%'")))
    assert text == "0"


def test_redact_names() -> None:
    assert redact({"API_KEY": 1, "owner": "x", "list": [{"client_secret": 2}]}) == \
        {"API_KEY": "***", "owner": "x", "list": [{"client_secret": "***"}]}


def test_pages_by_cursor_and_filters_by_name_id_and_hint(url: str) -> None:
    """Keyset paging (created_at, then id, both descending): records created in the same ms still
    page without a gap or a repeat, one created meanwhile does not shift the next page, and the
    filter matches a name, an id or a key's hint, case-insensitive, its `%` and `_` as themselves."""
    now = [0]
    created = [1000, 1000, 1000, 2000, 3000, 3000, 4000]

    async def body(s: SqlKeyStore) -> None:
        for i, at in enumerate(created):
            now[0] = at
            await s.create("master", UserRecord(id=f"u_{i}", name=f"User_{i}%"))
        now[0] = 5000
        first, after = await s.page("user", 3)
        assert [r.id for r in first] == ["u_6", "u_5", "u_4"] and after == (3000, "u_4")
        await s.create("master", UserRecord(id="u_7", name="late"))  # newer: never in a later page
        second, after = await s.page("user", 3, after=after)
        assert [r.id for r in second] == ["u_3", "u_2", "u_1"] and after == (1000, "u_1")
        last, after = await s.page("user", 3, after=after)
        assert [r.id for r in last] == ["u_0"] and after is None
        exact, after = await s.page("user", 8)
        assert len(exact) == 8 and after is None  # a full last page says there is no next one
        assert [r.id for r in (await s.page("user", 10, match="user_5%"))[0]] == ["u_5"]
        assert [r.id for r in (await s.page("user", 10, match="U_3"))[0]] == ["u_3"]
        assert (await s.page("user", 10, match="r_%x"))[0] == []  # `%` is not a wildcard
        await s.create_key("master", key(hint="sk-cb-QwEr...TyUi", name=None), HASH)
        assert [r.id for r in (await s.page("key", 10, match="qwer"))[0]] == ["k_one"]

    run_with_store(lambda: SqlKeyStore(Database(url), clock=lambda: now[0]), body)
