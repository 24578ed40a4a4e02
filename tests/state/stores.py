"""Running a test body against a started store, on a fresh event loop (a helper, not a test module)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
import sqlalchemy as sa

from clawdbot.state.sql import Database


class Startable(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...


S = TypeVar("S", bound=Startable)
T = TypeVar("T")


def run_with_store(make: Callable[[], S], body: Callable[[S], Awaitable[T]]) -> T:
    """`make` runs inside the loop the store will live in; the store is closed whatever happens."""
    async def main() -> T:
        store = make()
        await store.start()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def backends(request: pytest.FixtureRequest, tmp_path: Path, memory: Callable[[], Startable],
             sql: Callable[[Database], Startable]) -> Iterator[Callable[[Callable[[Any], Awaitable[Any]]], Any]]:
    """A store fixture's body, parametrised over ["sqlite", "postgresql", "memory"]: yields what
    runs a test body against a started store of that kind (PostgreSQL: a database of its own)."""
    if request.param == "memory":
        yield lambda body: run_with_store(memory, body)
        return
    if request.param == "sqlite":
        db_url = f"sqlite:///{tmp_path / 'store.db'}"
        yield lambda body: run_with_store(lambda: sql(Database(db_url)), body)
        return
    server = request.getfixturevalue("postgres")
    db_url = server.create()
    yield lambda body: run_with_store(lambda: sql(Database(db_url)), body)
    server.drop(sa.make_url(db_url).database or "")


def run_children_at_once(script: str, url: str, tmp_path: Path, children: int = 3, timeout: float = 60) -> None:
    """Runs `script` (argv: url, go-file) in `children` processes that each print "ready" once
    imported and then wait for the go-file, so all of them start their work at the same moment.
    Fails unless every child exits 0."""
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", script, url, str(go)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(children)
    ]
    try:
        for proc in procs:  # every child imported and waiting, then all start at once
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        go.touch()
        results = [proc.communicate(timeout=timeout) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    assert [proc.returncode for proc in procs] == [0] * children, [err for _, err in results]
