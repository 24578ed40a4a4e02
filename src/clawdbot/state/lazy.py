"""Stores that load the SQL layer at their first use.

SQLAlchemy, Alembic and a database driver cost ~35 MiB and a second of start-up. A process that only
ever sees the master key on /v1 needs none of it, so the chat store and the key store import, connect
and migrate when something first asks them for data (the chat page's first request, the first
virtual key, the first admin call). The URL is checked up front, without the SQL layer, so a typo
still stops `clawdbot serve` before it starts."""

from __future__ import annotations

import asyncio
import functools
import gc
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from clawdbot.state.base import ChatStore
    from clawdbot.state.keys_base import KeyStore
    from clawdbot.state.request_log_base import RequestLogStore
    from clawdbot.state.responses_base import ResponseStore
    from clawdbot.state.spend_base import SpendStore
    from clawdbot.state.sql import Database

SQL_BACKENDS = frozenset({"sqlite", "postgresql", "postgres"})


def check_url(url: str) -> None:
    """Raises ValueError for a URL that names no SQL database clawdbot supports. The message never
    repeats the URL (it may carry a password)."""
    scheme, sep, _ = url.partition(":")
    if not sep or not scheme:
        raise ValueError("the database URL cannot be parsed (e.g. sqlite:///path, postgresql://user@host/db)")
    backend = scheme.partition("+")[0].lower()
    if backend not in SQL_BACKENDS:
        raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


class Lazy:
    """Stands in for a store (a ChatStore, a KeyStore) on SQL: every method call first builds and
    starts the real store, once, however many callers ask at the same time, then goes to it.
    `start` does nothing; `close` closes the real store if it was ever opened."""

    def __init__(self, url: str, factory: Callable[[str], Any]) -> None:
        check_url(url)
        self.url = url
        self._factory = factory
        self._store: Any = None
        self._lock = asyncio.Lock()

    @property
    def opened(self) -> bool:
        return self._store is not None

    async def store(self) -> Any:
        if self._store is None:
            async with self._lock:
                if self._store is None:
                    store = self._factory(self.url)
                    await store.start()
                    self._store = store
                    settle_heap()
        return self._store

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        async with self._lock:
            store, self._store = self._store, None
        if store is not None:
            await store.close()

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await getattr(await self.store(), name)(*args, **kwargs)

        call.__name__ = name
        setattr(self, name, call)  # found directly from now on
        return call


def settle_heap() -> None:
    """The SQL layer just loaded (~60k objects that live as long as the process): out of the
    collector's way, as everything built at start is (api/app.py). Left in its oldest generation,
    each full pass would walk them again: ~30 us a request under load with the request log on."""
    if not gc.isenabled():
        return
    gc.collect()
    gc.freeze()


# One Database (engine, pool, migration) per URL and event loop, shared by the stores on it.
_databases: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Database]] = weakref.WeakKeyDictionary()


def shared_database(url: str) -> Database:
    """Called by a factory inside `Lazy.store`, so in the loop the database will live in."""
    from clawdbot.state.sql import Database

    per_loop = _databases.setdefault(asyncio.get_running_loop(), {})
    db = per_loop.get(url)
    if db is None:
        db = per_loop[url] = Database(url)
    return db


def _sql_chat_store(url: str) -> ChatStore:
    from clawdbot.state.chat_sql import SqlChatStore

    return SqlChatStore(shared_database(url))


def _sql_key_store(url: str) -> KeyStore:
    from clawdbot.state.keys_sql import SqlKeyStore

    return SqlKeyStore(shared_database(url))


def lazy_chat_store(url: str) -> ChatStore:
    """Raises ValueError for a URL no SQL store understands."""
    return cast("ChatStore", Lazy(url, _sql_chat_store))


def lazy_key_store(url: str) -> KeyStore:
    """Raises ValueError for a URL no SQL store understands."""
    return cast("KeyStore", Lazy(url, _sql_key_store))


def _sql_spend_store(url: str) -> SpendStore:
    from clawdbot.state.spend_sql import SqlSpendStore

    return SqlSpendStore(shared_database(url))


def lazy_spend_store(url: str) -> SpendStore:
    """Raises ValueError for a URL no SQL store understands."""
    return cast("SpendStore", Lazy(url, _sql_spend_store))


def _sql_response_store(url: str) -> ResponseStore:
    from clawdbot.state.responses_sql import SqlResponseStore

    return SqlResponseStore(shared_database(url))


def lazy_response_store(url: str) -> ResponseStore:
    """Raises ValueError for a URL no SQL store understands."""
    return cast("ResponseStore", Lazy(url, _sql_response_store))


def _sql_request_log_store(url: str, max_rows: int, retention_hours: float) -> RequestLogStore:
    from clawdbot.state.request_log_sql import SqlRequestLogStore

    return SqlRequestLogStore(shared_database(url), max_rows=max_rows, retention_hours=retention_hours)


def lazy_request_log_store(url: str, max_rows: int, retention_hours: float) -> RequestLogStore:
    """A SQLite file's log writes without the SQL layer (state/request_log_sqlite.py); any other
    database's opens SQLAlchemy at its first use. Raises ValueError for a URL no SQL store understands."""
    from clawdbot.state.request_log_sqlite import SqliteRequestLogStore, sqlite_file

    factory = functools.partial(_sql_request_log_store, max_rows=max_rows, retention_hours=retention_hours)
    store = cast("RequestLogStore", Lazy(url, factory))
    path = sqlite_file(url)
    if path is None:
        return store
    return SqliteRequestLogStore(path, store, max_rows=max_rows, retention_hours=retention_hours)
