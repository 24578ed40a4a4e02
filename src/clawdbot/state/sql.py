"""What every SQL store shares: the database URL (plain `sqlite:///` and `postgresql://` mapped to
the async drivers; passwords never shown), the engine (SQLite pragmas, explicit BEGIN), migrations,
and `Database`, the one engine of a process that all SQL stores use."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from clawdbot.state.files import private_file
from clawdbot.state.revision import SCHEMA_HEAD, VERSION_TABLE, SchemaError, migrate_in_child

if TYPE_CHECKING:
    import aiosqlite
    import alembic.config

log = logging.getLogger("clawdbot.state")

# A URL without a driver gets the async one; a URL naming its driver is taken as meant.
ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",  # Heroku-style spelling SQLAlchemy no longer accepts
}
DRIVER_HINTS = {"asyncpg": "PostgreSQL needs the asyncpg driver: pip install 'clawdbot[postgres]'"}
MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 15_000  # how long a write waits for another connection's write lock
WAL_RETRY_PAUSE_S = (0.002, 0.1)  # the first and the longest pause between attempts to switch to WAL
# pg_advisory_xact_lock key ("clawdbot" in ASCII): every clawdbot process migrating the same
# database queues on it. Advisory locks are per database, so other databases never contend.
MIGRATION_LOCK = 0x636C617764626F74
BEGIN_OPTION = "clawdbot_sqlite_begin"  # execution option: the BEGIN mode of a SQLite transaction


def async_url(url: str) -> sa.URL:
    try:
        parsed = sa.make_url(url)
    except ArgumentError:
        # SQLAlchemy's message repeats the whole URL, password included.
        raise ValueError("the database URL cannot be parsed (e.g. sqlite:///path, postgresql://user@host/db)") from None
    backend, _, driver = parsed.drivername.partition("+")
    if not driver:
        if backend not in ASYNC_DRIVERS:
            raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
        parsed = parsed.set(drivername=ASYNC_DRIVERS[backend])
    elif backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
    if parsed.get_backend_name() == "postgresql" and "sslmode" in parsed.query and "ssl" not in parsed.query:
        # libpq spells it sslmode; asyncpg takes the same values as `ssl` and rejects `sslmode`.
        parsed = parsed.update_query_dict({"ssl": parsed.query["sslmode"]}).difference_update_query(["sslmode"])
    return parsed


def redact(url: str | sa.URL) -> str:
    """The URL for logs and errors, its password replaced by ***."""
    if isinstance(url, str):
        try:
            url = sa.make_url(url)
        except ArgumentError:
            return "<unparseable database URL>"
    return url.render_as_string(hide_password=True)


def create_engine(url: str | sa.URL) -> AsyncEngine:
    parsed = async_url(url) if isinstance(url, str) else url
    sqlite = parsed.get_backend_name() == "sqlite"
    # sqlite3.connect's timeout is the busy timeout, set as the file is opened: before SQLAlchemy's
    # first-connect queries and our pragmas, so no statement on any connection runs without it.
    connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000} if sqlite else {}
    if sqlite and parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
        private_file(parsed.database)  # before SQLite creates it with the umask's mode
    try:
        # No pre-ping (a round trip per checkout): a disconnect error already invalidates the whole
        # pool, so a PostgreSQL restart costs one failed call.
        engine = create_async_engine(parsed, connect_args=connect_args)
    except ModuleNotFoundError as e:
        raise RuntimeError(DRIVER_HINTS.get(e.name or "", f"database driver missing: {e.name}")) from None
    if sqlite:
        sa.event.listen(engine.sync_engine, "connect", _sqlite_connect)
        sa.event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Python's sqlite3 begins transactions lazily and only before DML, so a read-then-write could not
    # take the write lock up front; turn that off and BEGIN ourselves (_sqlite_begin).
    dbapi_connection.isolation_level = None
    # On aiosqlite's connection itself: switching to WAL may have to wait, and only a coroutine can
    # wait without stalling the event loop.
    dbapi_connection.run_async(_sqlite_pragmas)


async def _sqlite_pragmas(conn: aiosqlite.Connection) -> None:
    # busy_timeout is already set (create_engine's connect_args): switching to WAL needs a lock.
    await _sqlite_wal(conn)
    async with conn.cursor() as cursor:
        # NORMAL is safe with WAL (no corruption); a power cut may lose the last commits, not the file.
        await cursor.execute("PRAGMA synchronous = NORMAL")
        # Off by default in SQLite, per connection: without it ON DELETE CASCADE does nothing.
        await cursor.execute("PRAGMA foreign_keys = ON")


async def _sqlite_wal(conn: aiosqlite.Connection) -> None:
    """`PRAGMA journal_mode = WAL` (readers never block the writer, nor it them), waiting as long as
    busy_timeout would for a connection that holds the lock.

    WAL is a property of the file, so it is set once: later connections find it in the header and
    only read. Switching reads the header, then takes the write lock to rewrite it, and when another
    connection got the write lock in between SQLite fails at once with SQLITE_BUSY, without waiting
    (the busy handler is skipped for a connection that holds a read lock: two such connections would
    wait for each other). Several processes, or several engines of one process, opening a new file
    together do exactly that. The failed statement holds no lock, so trying again (by which time
    another connection has usually switched the file) is the wait busy_timeout cannot do here; the
    same deadline applies, and any other error is raised at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause, longest = WAL_RETRY_PAUSE_S
    while True:
        try:
            async with conn.execute("PRAGMA journal_mode = WAL") as cursor:
                await cursor.fetchall()
            return
        except sqlite3.OperationalError as e:
            # sqlite_errorcode is the extended code (SQLITE_BUSY_RECOVERY, ...); its low byte the primary.
            if e.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or loop.time() + pause > deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, longest)


def _sqlite_begin(connection: sa.Connection) -> None:
    mode = connection.get_execution_options().get(BEGIN_OPTION, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


def alembic_config(*, connection: sa.Connection | None = None, url: str | None = None) -> alembic.config.Config:
    """Alembic's configuration, without an ini file: migrations/env.py runs on `connection`, or on a
    new engine for `url` (for a developer's `alembic.command.revision(..., autogenerate=True)`)."""
    import alembic.config

    config = alembic.config.Config()
    # configparser would take a '%' in the path for interpolation
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    config.attributes["url"] = url
    return config


async def upgrade(engine: AsyncEngine) -> str:
    """Brings the schema to the newest revision and returns it. A schema already there is read
    with one query and Alembic is never imported; a migration of a database file or server runs
    in a child process (`python -m clawdbot.state.migrate`), so Alembic and the migration scripts
    (~8 MiB) never stay in the gateway's memory. Only an in-memory SQLite database, which no other
    process can open, is migrated here (`migrate_here`)."""
    if set(await _revisions(engine)) == {SCHEMA_HEAD}:
        return SCHEMA_HEAD
    if not _shared(engine.url):
        return await migrate_here(engine)
    await migrate_in_child(engine.url.render_as_string(hide_password=False), redact(engine.url))
    current = set(await _revisions(engine))
    if current != {SCHEMA_HEAD}:
        raise SchemaError(f"the migration left the schema at {', '.join(sorted(current)) or 'nothing'}, "
                          f"not {SCHEMA_HEAD}")
    return SCHEMA_HEAD


async def _revisions(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return await conn.run_sync(current_revisions)


def _shared(url: sa.URL) -> bool:
    """Can another process open this database? (Not an in-memory SQLite one.)"""
    if url.get_backend_name() != "sqlite":
        return True
    db = url.database or ""
    return bool(db) and db != ":memory:" and "mode=memory" not in db and not db.startswith("file::memory:")


async def migrate_here(engine: AsyncEngine) -> str:
    """The migration in this process (the child's work, and an in-memory database's). Safe to run
    again, and from several processes, threads or stores at once: the second waits for the first's
    lock, then finds nothing to do; a process migrates one database at a time (alembic's globals,
    _alembic_turn)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    assert head is not None, "no migrations shipped"
    known = {rev.revision for rev in script.walk_revisions()}
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            # The write lock before the version is read, not at the first write.
            await conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
        async with conn.begin():
            # One transaction for all revisions: both databases have transactional DDL, so a failed
            # upgrade leaves the schema as it was.
            if engine.dialect.name == "postgresql":
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            current = set(await conn.run_sync(current_revisions))
            if current - known:
                raise SchemaError(
                    f"the database schema is at revision {', '.join(sorted(current))}, which this version "
                    f"of clawdbot does not know (its newest is {head}); a newer clawdbot wrote it"
                )
            if current != {head}:
                # The database's lock first, then the process's: whoever holds the process's lock
                # already holds its database's and waits for nothing else, so no two wait for each other.
                async with _alembic_turn():
                    await conn.run_sync(_run_alembic)
                log.info("state: schema migrated from %s to %s", ", ".join(sorted(current)) or "empty", head)
    return head


# Alembic keeps the migration it runs in module globals: `alembic.context` and `alembic.op` (which the
# revisions call) point at one connection for the whole process. Two upgrades at once, from two event
# loops or threads, or interleaved in one loop, would run DDL on each other's connection, and the one
# to finish second fails in alembic's clean-up (`del globals["config"]`: KeyError: 'config'). So a
# process runs one upgrade at a time; this lock is held from before alembic installs those globals
# until after it has removed them.
_ALEMBIC_LOCK = threading.Lock()
ALEMBIC_POLL_S = 0.01


@contextlib.asynccontextmanager
async def _alembic_turn() -> AsyncIterator[None]:
    # Polled: the holder may be a task of this event loop (a blocking acquire would never return) or
    # of another thread's, which no asyncio primitive can wake. Only upgrades that have work to do
    # wait here, once per process start, for as long as another database's migration takes.
    while not _ALEMBIC_LOCK.acquire(blocking=False):  # noqa: ASYNC110
        await asyncio.sleep(ALEMBIC_POLL_S)
    try:
        yield
    finally:
        _ALEMBIC_LOCK.release()


def _run_alembic(connection: sa.Connection) -> None:
    import alembic.command
    import alembic.context

    # Someone calling alembic in this process without _alembic_turn (a developer's autogenerate).
    if getattr(alembic.context, "_proxy", None) is not None:
        raise RuntimeError("alembic is already running in this process; migrate one database at a time")
    alembic.command.upgrade(alembic_config(connection=connection), "head")


def current_revisions(connection: sa.Connection) -> list[str]:
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return []
    return list(connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())


class Database:
    """One engine for all SQL stores of a process. The first `acquire` connects and migrates, the last
    `release` disconnects, so stores sharing it can start and close in any order. Lives in one event
    loop (its connections do)."""

    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        self._engine: AsyncEngine | None = None
        self._users = 0
        self._lock = asyncio.Lock()

    @property
    def display_url(self) -> str:
        return redact(self.url)

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the database is not started (start the store first)")
        return self._engine

    async def acquire(self) -> None:
        async with self._lock:
            if self._engine is None:
                engine = create_engine(self.url)
                try:
                    revision = await upgrade(engine)
                except BaseException:
                    await engine.dispose()
                    raise
                log.info("state: %s (schema %s)", self.display_url, revision)
                self._engine = engine
            self._users += 1

    async def release(self) -> None:
        async with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users == 0 and self._engine is not None:
                engine, self._engine = self._engine, None
                await engine.dispose()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that holds SQLite's write lock from its start (PostgreSQL: an ordinary one;
        lock rows with FOR UPDATE), so reading before writing never fails on a concurrent writer."""
        async with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                await conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
            async with conn.begin():
                yield conn


class DatabaseUser:
    """A store's share of a Database, taken at its first use (every method calls `start`) and
    given back by `close`; concurrent first uses wait for one connection and migration."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._started = False
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        if self._started:
            return
        async with self._lock:
            if not self._started:
                await self.database.acquire()
                self._started = True

    async def close(self) -> None:
        async with self._lock:
            if self._started:
                self._started = False
                await self.database.release()
