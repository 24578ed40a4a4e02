"""Running a test body against a started store, on a fresh event loop (a helper, not a test module)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar


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
