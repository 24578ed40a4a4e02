"""MemoryChatStore (`database_url: memory://`) keeps the ChatStore contract."""

from __future__ import annotations

import asyncio

import pytest

from clawdbot.state.memory import MemoryChatStore


def test_contract() -> None:
    async def body() -> None:
        st = MemoryChatStore()
        await st.start()
        a = await st.create_session("u1", "a", None)
        b = await st.create_session("u1", "b", "m")
        assert [s.id for s in await st.list_sessions("u1")] == [b.id, a.id]
        assert await st.list_sessions("u2") == [] and await st.get_session("u2", a.id) is None
        m1, _ = await st.add_message("u1", a.id, "user", "hi", "m")
        m2, _ = await st.add_message("u1", a.id, "assistant", "yo", "m", "aborted", {"promptTokens": 1}, {"x": 1})
        assert [m.id for m in await st.list_messages("u1", a.id)] == [m1.id, m2.id]
        got = await st.get_session("u1", a.id)
        assert got is not None and got.message_count == 2
        assert [s.id for s in await st.list_sessions("u1")] == [a.id, b.id]  # bumped by the message
        assert [s.id for s in await st.list_sessions("u1", before=got.updated_at + 1, limit=1)] == [a.id]
        with pytest.raises(KeyError):
            await st.add_message("u2", a.id, "user", "x", None)
        assert await st.delete_last_assistant("u1", a.id)
        assert not await st.delete_last_assistant("u1", a.id)  # the newest is the user's now
        m3, after = await st.add_message("u1", a.id, "user", "again", "m")
        assert after == await st.get_session("u1", a.id) and after.message_count == 2
        assert after.updated_at == m3.created_at
        after.title = "changed"  # a copy: the store's record is not the caller's
        got = await st.get_session("u1", a.id)
        assert got is not None and got.title == "a"
        renamed = await st.rename_session("u1", b.id, "bee")
        assert renamed is not None and renamed.title == "bee"
        moved = await st.set_session_model("u1", b.id, "n")
        assert moved is not None and moved.model == "n"
        assert not await st.delete_session("u2", b.id) and await st.delete_session("u1", b.id)
        assert await st.list_messages("u1", b.id) == []
        await st.close()

    asyncio.run(body())


def test_bounded() -> None:
    async def body() -> None:
        st = MemoryChatStore(max_sessions=2, max_messages=3)
        first = await st.create_session("u", "1", None)
        second = await st.create_session("u", "2", None)
        await st.add_message("u", first.id, "user", "keeps it fresh", None)
        await st.create_session("u", "3", None)  # the least recently touched goes
        assert await st.get_session("u", second.id) is None and await st.get_session("u", first.id) is not None
        for i in range(5):
            await st.add_message("u", first.id, "user", str(i), None)
        assert [m.content for m in await st.list_messages("u", first.id)] == ["2", "3", "4"]

    asyncio.run(body())
