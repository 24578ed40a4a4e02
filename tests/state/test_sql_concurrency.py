"""The SQL layer when many start on one database at once: connections of several engines, event loops
in several threads, several processes each with several stores. SQLite's switch to WAL must wait for
a lock like every other statement, and alembic's process-global state must see one upgrade at a time.

The same fresh SQLite file / PostgreSQL database per test as test_chat_store.py."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from clawdbot.state.chat_sql import SqlChatStore
from clawdbot.state.revision import VERSION_TABLE
from clawdbot.state.sql import Database, create_engine
from tests.state import test_chat_store as chat_tests
from tests.state.stores import run_children_at_once
from tests.state.test_chat_store import scalar

postgres, url = chat_tests.postgres, chat_tests.url


def test_wal_switch_waits_for_another_connections_write_lock(tmp_path: Path) -> None:
    """Switching a file to WAL reads its header, then needs the write lock to rewrite it; SQLite fails
    that at once (no busy_timeout: the connection holds a read lock) when another connection holds
    the write lock, as when several engines or processes open a new file together."""
    path = tmp_path / "chat.db"
    holder = sqlite3.connect(path, isolation_level=None)  # rollback journal: SQLite's default
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")

    async def main() -> tuple[object, float]:
        engine = create_engine(f"sqlite:///{path}")
        started = time.monotonic()
        # Released from this event loop's thread (the holder's), while the engine's connect waits.
        asyncio.get_running_loop().call_later(0.3, holder.execute, "COMMIT")
        try:
            async with engine.connect() as conn:
                mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
                return mode, time.monotonic() - started
        finally:
            await engine.dispose()

    try:
        mode, waited = asyncio.run(main())
    finally:
        holder.close()
    assert mode == "wal"
    assert waited >= 0.25  # it waited for the lock rather than finding none


def test_many_engines_open_a_new_sqlite_file_at_once(tmp_path: Path) -> None:
    async def main(path: Path) -> list[object]:
        engines = [create_engine(f"sqlite:///{path}") for _ in range(8)]

        async def mode(engine: sa.ext.asyncio.AsyncEngine) -> object:
            async with engine.connect() as conn:
                return (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()

        try:
            return await asyncio.gather(*(mode(engine) for engine in engines))
        finally:
            await asyncio.gather(*(engine.dispose() for engine in engines))

    for i in range(10):
        assert asyncio.run(main(tmp_path / f"new-{i}.db")) == ["wal"] * 8


def test_upgrades_from_several_threads_take_turns(url: str, tmp_path: Path) -> None:
    """Each thread has its own event loop; some share a database, the others have one each. Upgrades
    that overlapped in alembic's globals would run DDL on another thread's connection."""
    for round_ in range(3):
        urls = [url, url] if round_ == 0 else []  # the fixture's database is fresh only once
        urls += [f"sqlite:///{tmp_path / f'r{round_}-{i}.db'}" for i in range(4)]
        urls += [f"sqlite:///{tmp_path / f'r{round_}-shared.db'}"] * 2
        barrier = threading.Barrier(len(urls))
        errors: list[BaseException] = []

        def run(db_url: str, barrier: threading.Barrier = barrier, errors: list[BaseException] = errors) -> None:
            async def main() -> None:
                store = SqlChatStore(Database(db_url))
                await store.start()
                try:
                    await store.create_session("alice", "t", None)
                finally:
                    await store.close()

            barrier.wait()
            try:
                asyncio.run(main())
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=run, args=(u,)) for u in urls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        for u in set(urls):
            assert asyncio.run(scalar(u, f"SELECT version_num FROM {VERSION_TABLE}")) == chat_tests.HEAD
            assert asyncio.run(scalar(u, "SELECT count(*) FROM chat_sessions")) == urls.count(u)


SEVERAL_STORES_IN_CHILD = """
import asyncio, os, sys, time
from clawdbot.state.build import build_chat_store

async def main():
    stores = [build_chat_store(sys.argv[1]) for _ in range(3)]
    print("ready", flush=True)
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.005)
    await asyncio.gather(*(store.start() for store in stores))
    for store in stores:
        await store.create_session("p", str(os.getpid()), None)
    await asyncio.gather(*(store.close() for store in stores))

asyncio.run(main())
"""


def test_several_processes_each_with_several_stores_start_at_once(url: str, tmp_path: Path) -> None:
    run_children_at_once(SEVERAL_STORES_IN_CHILD, url, tmp_path, timeout=90)
    assert asyncio.run(scalar(url, f"SELECT count(*) FROM {VERSION_TABLE}")) == 1
    assert asyncio.run(scalar(url, "SELECT count(*) FROM chat_sessions")) == 9
