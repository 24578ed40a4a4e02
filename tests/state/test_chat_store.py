"""SqlChatStore on a real SQLite file and a real PostgreSQL database: the ChatStore contract, the
migrations (idempotent, concurrent, matching tables.py), and choosing the database URL.

PostgreSQL: CLAWDBOT_TEST_POSTGRES_URL (default postgres@127.0.0.1:5432, trust auth). Each test gets
a fresh database, dropped afterwards; an unreachable server fails the run instead of skipping."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from clawdbot.config.schema import Config
from clawdbot.state.build import build_chat_store, database_url
from clawdbot.state.chat_sql import SqlChatStore
from clawdbot.state.revision import SCHEMA_HEAD, VERSION_TABLE, SchemaError
from clawdbot.state.sql import (
    MIGRATIONS,
    Database,
    alembic_config,
    async_url,
    create_engine,
    current_revisions,
    redact,
    upgrade,
)
from clawdbot.state.tables import metadata
from tests.state.stores import run_children_at_once, run_with_store

T = TypeVar("T")
PG_ADMIN_URL = os.environ.get("CLAWDBOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
HEAD = "0009"
ID = re.compile(r"^[sm]_[a-z2-7]{16}$")


# --- databases ---------------------------------------------------------------------------------


class PostgresServer:
    """Creates throw-away databases named clawdbot_test_<random>_<n> and drops them."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.prefix = f"clawdbot_test_{secrets.token_hex(4)}"
        self.created: list[str] = []

    def create(self) -> str:
        name = f"{self.prefix}_{len(self.created)}"
        asyncio.run(self._admin(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return sa.make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop(self, name: str) -> None:
        # FORCE: a test that failed midway may have left a connection open.
        asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.admin_url, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


def _postgres_error(url: str) -> str | None:
    async def probe() -> None:
        conn = await asyncpg.connect(url, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except (TimeoutError, OSError, asyncpg.PostgresError) as e:
        return f"{type(e).__name__}: {e}"
    return None


def _start_local_postgres() -> None:
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return
    for version in os.listdir("/etc/postgresql"):
        cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"]
        subprocess.run(cmd, capture_output=True, timeout=60, check=False)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    error = _postgres_error(PG_ADMIN_URL)
    if error is not None:
        _start_local_postgres()
        deadline = time.monotonic() + 15
        while (error := _postgres_error(PG_ADMIN_URL)) is not None and time.monotonic() < deadline:
            time.sleep(0.5)
    if error is not None:
        pytest.fail(
            f"PostgreSQL is not reachable at {redact(PG_ADMIN_URL)} ({error}). Start it "
            "(pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) or point "
            "CLAWDBOT_TEST_POSTGRES_URL at a server where this user may create databases.",
            pytrace=False,
        )
    server = PostgresServer(PG_ADMIN_URL)
    yield server
    for name in server.created:
        server.drop(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database, as the plain URL a user would write (the store picks the driver)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'chat.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    db_url = server.create()
    yield db_url
    server.drop(sa.make_url(db_url).database or "")


def with_store(url: str, body: Callable[[SqlChatStore], Awaitable[T]], **kwargs: Any) -> T:
    return run_with_store(lambda: SqlChatStore(Database(url), **kwargs), body)


async def scalar(url: str, sql: str) -> Any:
    """Reads the database behind the store's back, on an engine of its own."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(sa.text(sql))).scalar()
    finally:
        await engine.dispose()


# --- the ChatStore contract --------------------------------------------------------------------


def test_session_crud(url: str) -> None:
    async def body(store: SqlChatStore) -> None:
        before = int(time.time() * 1000)
        s = await store.create_session("alice", "First chat", "llama3")
        assert ID.match(s.id) and s.id.startswith("s_")
        assert (s.user, s.title, s.model, s.message_count) == ("alice", "First chat", "llama3", 0)
        assert before - 1000 <= s.created_at == s.updated_at <= int(time.time() * 1000) + 1000
        assert await store.get_session("alice", s.id) == s

        renamed = await store.rename_session("alice", s.id, "Renamed")
        assert renamed is not None and renamed.title == "Renamed" and renamed.updated_at > s.updated_at
        moved = await store.set_session_model("alice", s.id, None)
        assert moved is not None and moved.model is None and moved.title == "Renamed"
        assert moved.updated_at == renamed.updated_at  # a model switch is not activity
        assert await store.get_session("alice", s.id) == moved

        assert await store.get_session("alice", "s_missing") is None
        assert await store.rename_session("alice", "s_missing", "x") is None
        assert await store.set_session_model("alice", "s_missing", "m") is None

        assert await store.delete_session("alice", s.id) is True
        assert await store.get_session("alice", s.id) is None
        assert await store.delete_session("alice", s.id) is False

    with_store(url, body)


def test_messages_round_trip_and_count(url: str) -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 3, "detail": {"cached": [1, 2]}}
    trace = {"request_id": "r-1", "service": "ol", "latency_ms": 41.5, "note": "naïve ✓"}

    async def body(store: SqlChatStore) -> None:
        s = await store.create_session("alice", "t", None)
        q, _ = await store.add_message("alice", s.id, "user", "Hello?", None)
        a, _ = await store.add_message("alice", s.id, "assistant", "Hi!", "llama3", "aborted", usage, trace)
        assert ID.match(q.id) and q.id.startswith("m_") and q.status == "complete"
        assert q.usage is None and q.trace is None
        assert q.created_at < a.created_at
        assert await store.list_messages("alice", s.id) == [q, a]
        stored = (await store.list_messages("alice", s.id))[1]
        assert (stored.usage, stored.trace, stored.status, stored.model) == (usage, trace, "aborted", "llama3")

        session = await store.get_session("alice", s.id)
        assert session is not None and session.message_count == 2 and session.updated_at == a.created_at

        # the message and the session as the append left it, in one call
        m, after = await store.add_message("alice", s.id, "user", "And?", "llama3")
        assert after == await store.get_session("alice", s.id)
        assert (after.message_count, after.updated_at, after.title) == (3, m.created_at, "t")
        assert (await store.list_messages("alice", s.id))[-1] == m
        with pytest.raises(KeyError):
            await store.add_message("bob", s.id, "user", "x", None)  # someone else's session
        with pytest.raises(KeyError):
            await store.add_message("alice", "s_missing", "user", "x", None)
        with pytest.raises(ValueError, match="role"):
            await store.add_message("alice", s.id, "system", "x", None)
        with pytest.raises(ValueError, match="status"):
            await store.add_message("alice", s.id, "user", "x", None, status="done")
        assert await store.list_messages("alice", "s_missing") == []

    with_store(url, body)


def test_users_are_isolated(url: str) -> None:
    async def body(store: SqlChatStore) -> None:
        s = await store.create_session("alice", "private", "m")
        m, _ = await store.add_message("alice", s.id, "assistant", "secret", None)

        assert await store.get_session("bob", s.id) is None
        assert await store.list_sessions("bob") == []
        assert await store.list_messages("bob", s.id) == []
        assert await store.rename_session("bob", s.id, "mine now") is None
        assert await store.set_session_model("bob", s.id, "x") is None
        with pytest.raises(KeyError):
            await store.add_message("bob", s.id, "user", "injected", None)
        assert await store.delete_last_assistant("bob", s.id) is False
        assert await store.delete_session("bob", s.id) is False

        after = await store.get_session("alice", s.id)
        assert after is not None and (after.title, after.model, after.message_count) == ("private", "m", 1)
        assert await store.list_messages("alice", s.id) == [m]

    with_store(url, body)


def test_list_sessions_newest_first_and_paging(url: str) -> None:
    async def body(store: SqlChatStore) -> None:
        sessions = [await store.create_session("alice", f"chat {i}", None) for i in range(7)]
        await store.create_session("bob", "not alice's", None)
        # Activity moves a session to the top.
        await store.add_message("alice", sessions[0].id, "user", "bump", None)
        expected = [sessions[0].id] + [s.id for s in reversed(sessions[1:])]

        listed = await store.list_sessions("alice")
        assert [s.id for s in listed] == expected
        assert [s.updated_at for s in listed] == sorted((s.updated_at for s in listed), reverse=True)

        paged: list[str] = []
        before: int | None = None
        while page := await store.list_sessions("alice", limit=3, before=before):
            assert len(page) <= 3
            assert all(before is None or s.updated_at < before for s in page)
            paged += [s.id for s in page]
            before = page[-1].updated_at
        assert paged == expected

        assert await store.list_sessions("alice", limit=0) == []
        assert await store.list_sessions("alice", before=listed[-1].updated_at) == []

    with_store(url, body)


def test_same_millisecond_keeps_order(url: str) -> None:
    """A stuck clock (or one behind the database): times still strictly increase within a session."""

    async def body(store: SqlChatStore) -> None:
        s = await store.create_session("alice", "t", None)
        added = [
            (await store.add_message("alice", s.id, "user" if i % 2 else "assistant", str(i), None))[0]
            for i in range(6)
        ]
        listed = await store.list_messages("alice", s.id)
        assert [m.content for m in listed] == [str(i) for i in range(6)]
        assert listed == added
        assert len({m.created_at for m in listed}) == 6 and all(m.created_at > 1000 for m in listed)
        assert await store.delete_last_assistant("alice", s.id) is False  # the newest, "5", is the user's
        await store.add_message("alice", s.id, "assistant", "6", None)
        assert await store.delete_last_assistant("alice", s.id) is True
        assert [m.content for m in await store.list_messages("alice", s.id)][-1] == "5"

    with_store(url, body, clock=lambda: 1000)


def test_concurrent_appends_from_two_stores(url: str) -> None:
    async def main() -> None:
        a, b = SqlChatStore(Database(url)), SqlChatStore(Database(url), clock=lambda: 1)  # b's clock is far behind
        await asyncio.gather(a.start(), b.start())
        try:
            s = await a.create_session("alice", "t", None)
            await asyncio.gather(
                *(store.add_message("alice", s.id, "user", f"{i}", None) for i in range(20) for store in (a, b))
            )
            messages = await b.list_messages("alice", s.id)
            assert len(messages) == 40 and len({m.created_at for m in messages}) == 40
            session = await b.get_session("alice", s.id)
            assert session is not None and session.message_count == 40
            assert session.updated_at == messages[-1].created_at
        finally:
            await asyncio.gather(a.close(), b.close())

    asyncio.run(main())


def test_delete_session_cascades_to_messages(url: str) -> None:
    async def body(store: SqlChatStore) -> None:
        keep = await store.create_session("alice", "keep", None)
        drop = await store.create_session("alice", "drop", None)
        for s in (keep, drop):
            await store.add_message("alice", s.id, "user", "q", None)
            await store.add_message("alice", s.id, "assistant", "a", None)
        assert await store.delete_session("alice", drop.id) is True
        # Counted in SQL: the rows are gone, not merely hidden by the join.
        assert await scalar(url, f"SELECT count(*) FROM chat_messages WHERE session_id = '{drop.id}'") == 0
        assert await scalar(url, "SELECT count(*) FROM chat_messages") == 2
        assert len(await store.list_messages("alice", keep.id)) == 2

    with_store(url, body)


def test_foreign_key_is_enforced(url: str) -> None:
    async def main() -> None:
        engine = create_engine(url)
        try:
            with pytest.raises(sa.exc.IntegrityError):
                async with engine.begin() as conn:
                    await conn.execute(
                        sa.text(
                            "INSERT INTO chat_messages (id, session_id, role, content, status, created_at) "
                            "VALUES ('m_x', 's_nowhere', 'user', 'x', 'complete', 1)"
                        )
                    )
        finally:
            await engine.dispose()

    with_store(url, lambda store: main())


def test_delete_last_assistant(url: str) -> None:
    async def body(store: SqlChatStore) -> None:
        s = await store.create_session("alice", "t", None)
        assert await store.delete_last_assistant("alice", s.id) is False  # no messages
        assert await store.delete_last_assistant("alice", "s_missing") is False
        q, _ = await store.add_message("alice", s.id, "user", "q", None)
        assert await store.delete_last_assistant("alice", s.id) is False  # newest is the user's
        a1, _ = await store.add_message("alice", s.id, "assistant", "a1", None)
        await store.add_message("alice", s.id, "assistant", "a2", None)

        before = await store.get_session("alice", s.id)
        assert await store.delete_last_assistant("alice", s.id) is True  # only the newest goes
        assert await store.list_messages("alice", s.id) == [q, a1]
        session = await store.get_session("alice", s.id)
        assert session is not None and before is not None
        assert session.message_count == 2 and session.updated_at == before.updated_at

        regenerated, _ = await store.add_message("alice", s.id, "assistant", "a2 again", None)
        assert (await store.list_messages("alice", s.id))[-1] == regenerated
        assert regenerated.created_at > a1.created_at

    with_store(url, body)


def test_data_survives_a_restart(url: str) -> None:
    async def write(store: SqlChatStore) -> tuple[str, list[str]]:
        s = await store.create_session("alice", "kept", "m")
        await store.add_message("alice", s.id, "user", "remember me", None, usage={"n": 1})
        # The same object closes and starts again.
        await store.close()
        await store.start()
        assert await store.get_session("alice", s.id) is not None
        return s.id, [m.content for m in await store.list_messages("alice", s.id)]

    session_id, contents = with_store(url, write)

    async def read(store: SqlChatStore) -> None:
        session = await store.get_session("alice", session_id)
        assert session is not None and (session.title, session.model, session.message_count) == ("kept", "m", 1)
        messages = await store.list_messages("alice", session_id)
        assert [m.content for m in messages] == contents and messages[0].usage == {"n": 1}

    with_store(url, read)  # a new process would do the same: a new Database, a new engine


# --- migrations ----------------------------------------------------------------------------------


def test_migrations_are_idempotent(url: str) -> None:
    async def main() -> None:
        engine = create_engine(url)
        try:
            assert await upgrade(engine) == HEAD
            assert await upgrade(engine) == HEAD
            async with engine.connect() as conn:
                assert await conn.run_sync(current_revisions) == [HEAD]
        finally:
            await engine.dispose()
        store = SqlChatStore(Database(url))
        await store.start()
        await store.start()  # a second start is a no-op, not a second user of the database
        await store.close()
        with pytest.raises(RuntimeError, match="not started"):
            await store.list_sessions("alice")

    asyncio.run(main())


def test_concurrent_migrations_in_one_process(url: str) -> None:
    async def main() -> None:
        stores = [SqlChatStore(Database(url)) for _ in range(4)]
        await asyncio.gather(*(store.start() for store in stores))
        try:
            s = await stores[0].create_session("alice", "t", None)
            assert await stores[3].get_session("alice", s.id) == s
        finally:
            await asyncio.gather(*(store.close() for store in stores))
        assert await scalar(url, f"SELECT count(*) FROM {VERSION_TABLE}") == 1

    asyncio.run(main())


def test_different_databases_migrate_concurrently_in_one_process(url: str, tmp_path: Path) -> None:
    """Alembic's context is process-global; migrations of different databases must not interleave."""
    urls = [url] + [f"sqlite:///{tmp_path / f'other-{i}.db'}" for i in range(3)]

    async def main() -> None:
        stores = [SqlChatStore(Database(u)) for u in urls]
        await asyncio.gather(*(store.start() for store in stores))
        try:
            for store in stores:
                s = await store.create_session("alice", "t", None)
                assert [x.id for x in await store.list_sessions("alice")] == [s.id]
        finally:
            await asyncio.gather(*(store.close() for store in stores))

    asyncio.run(main())
    for u in urls:
        assert asyncio.run(scalar(u, f"SELECT version_num FROM {VERSION_TABLE}")) == HEAD


MIGRATE_IN_CHILD = """
import asyncio, os, sys, time
from clawdbot.state.build import build_chat_store

async def main():
    store = build_chat_store(sys.argv[1])
    print("ready", flush=True)
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.005)
    await store.start()
    await store.create_session("p", str(os.getpid()), None)
    await store.close()

asyncio.run(main())
"""


def test_concurrent_migrations_across_processes(url: str, tmp_path: Path) -> None:
    run_children_at_once(MIGRATE_IN_CHILD, url, tmp_path)
    assert asyncio.run(scalar(url, f"SELECT count(*) FROM {VERSION_TABLE}")) == 1
    assert asyncio.run(scalar(url, "SELECT count(*) FROM chat_sessions")) == 3


def test_migrated_schema_matches_tables(url: str) -> None:
    """tables.py (what the queries use) and the migrations (what builds the database) agree."""

    async def main() -> list[Any]:
        engine = create_engine(url)
        try:
            await upgrade(engine)
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync, opts={"version_table": VERSION_TABLE}), metadata
                    )
                )
        finally:
            await engine.dispose()

    assert asyncio.run(main()) == []


def test_revisions_form_one_line() -> None:
    """One head, one file per revision id: Alembic only warns when two files claim the same id."""
    script = ScriptDirectory.from_config(alembic_config())
    files = [p for p in (MIGRATIONS / "versions").glob("*.py") if p.name != "__init__.py"]
    assert script.get_heads() == [HEAD]
    assert len({rev.revision for rev in script.walk_revisions()}) == len(files)


def test_schema_head_is_alembics_head() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_HEAD


def test_the_gateway_process_never_keeps_alembic(tmp_path: Path) -> None:
    """A fresh database file is migrated by a child process, and one at the newest schema is only
    read: either way Alembic is not imported in the process that serves (its memory stays free)."""
    probe = textwrap.dedent("""
        import asyncio, sys
        from clawdbot.state.sql import Database
        async def main():
            db = Database(sys.argv[1])
            await db.acquire()
            await db.release()
        asyncio.run(main())
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("alembic", "mako")))
    """)
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    for _ in ("migrated by a child", "already at the head"):
        out = subprocess.run([sys.executable, "-c", probe, url], capture_output=True, text=True, timeout=120,
                             check=True)
        assert out.stdout.strip() == "[]", out.stderr

    async def revision() -> list[str]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))).scalars())
        finally:
            await engine.dispose()
    assert asyncio.run(revision()) == [SCHEMA_HEAD]


def test_a_newer_schema_is_refused(url: str) -> None:
    async def main() -> None:
        engine = create_engine(url)
        try:
            await upgrade(engine)
            async with engine.begin() as conn:
                await conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
        finally:
            await engine.dispose()
        with pytest.raises(SchemaError, match=r"9999.*does not know"):
            await SqlChatStore(Database(url)).start()

    asyncio.run(main())


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'chat.db'}"

    async def main() -> tuple[Any, Any]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
                keys = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
                return mode, keys
        finally:
            await engine.dispose()

    assert asyncio.run(main()) == ("wal", 1)


def test_start_never_logs_the_password(postgres: PostgresServer, caplog: pytest.LogCaptureFixture) -> None:
    # Trust auth ignores the password, so the URL still connects.
    url = sa.make_url(postgres.create()).set(password="hunter2-secret").render_as_string(hide_password=False)
    caplog.set_level(logging.DEBUG)
    with_store(url, lambda store: store.list_sessions("alice"))
    assert "hunter2-secret" not in caplog.text
    assert "postgres:***@" in caplog.text


# --- choosing the database -----------------------------------------------------------------------


def test_database_url_precedence(tmp_path: Path) -> None:
    config = Config(database_url="postgresql://from-config/db", data_dir=str(tmp_path))
    env = {"CLAWDBOT_DATABASE_URL": "postgresql://from-env/db"}
    assert database_url(config, env) == "postgresql://from-env/db"
    assert database_url(config, {}) == "postgresql://from-config/db"
    assert database_url(config, {"CLAWDBOT_DATABASE_URL": ""}) == "postgresql://from-config/db"


def test_default_database_is_sqlite_in_a_private_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    url = database_url(Config(data_dir="~/state/clawdbot"), {})
    data_dir = tmp_path / "state" / "clawdbot"
    assert url == f"sqlite+aiosqlite:///{data_dir}/clawdbot.db"
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700

    other = tmp_path / "from-env"
    assert database_url(Config(), {"CLAWDBOT_DATA_DIR": str(other)}) == f"sqlite+aiosqlite:///{other}/clawdbot.db"

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    database_url(Config(data_dir=str(shared)), {})
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755  # an existing directory is the user's choice


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite"),
        ("postgresql://u@h/db", "postgresql+asyncpg"),
        ("postgres://u@h/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg"),
    ],
)
def test_urls_get_async_drivers(given: str, driver: str) -> None:
    assert async_url(given).drivername == driver


def test_libpq_sslmode_becomes_asyncpg_ssl() -> None:
    url = async_url("postgresql://u@h/db?sslmode=require&application_name=x")
    assert dict(url.query) == {"ssl": "require", "application_name": "x"}


def test_bad_urls_are_refused_without_showing_them() -> None:
    for bad in ("mysql://root:hunter2@h/db", "not a url hunter2", "oracle+cx://u:hunter2@h/db"):
        with pytest.raises(ValueError) as e:
            build_chat_store(bad)
        assert "hunter2" not in str(e.value)
    assert redact("postgresql://u:hunter2@h/db") == "postgresql://u:***@h/db"
    assert "hunter2" not in redact("not a url hunter2")
