"""A bounded bridge from a blocking iterator running in a worker thread to an async consumer.

The worker hands each item to the event loop with `call_soon_threadsafe`; a semaphore with
`maxsize` slots makes the worker block while the consumer is `maxsize` items behind, so memory stays
bounded however slow the client is. When the consumer goes away it calls `stop()`: the flag is set
and one slot released, so a worker blocked on a full queue wakes at once and ends the iterator.

`lockstep`: after handing over an item the worker waits until the consumer asks for the next one,
so the two never run at once. For a producer that keeps every core busy between items (llama.cpp
decoding a token on all its threads), the consumer's turn then takes a core nobody computes on,
instead of pre-empting a thread the others wait for at their next barrier; the item reaches the
client without waiting for the scheduler to find the consumer a core (bench/local_vs_raw.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class _End:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException | None) -> None:
        self.exc = exc


class ThreadStream(Generic[T]):
    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int = 64, lockstep: bool = False) -> None:
        self._loop = loop
        self._lockstep = lockstep
        self._asked = threading.Semaphore(0)  # lockstep: the consumer asked for the item after the last
        self._handed = False  # lockstep, consumer side: an item was handed over since the last ask
        # One spare place for the end marker, which never waits for a slot.
        self._queue: asyncio.Queue[T | _End] = asyncio.Queue(maxsize + 1)
        self._slots = threading.Semaphore(maxsize)
        self.stopped = threading.Event()

    # -- worker thread side ----------------------------------------------------------------------

    def fill(self, source: Callable[[], Iterator[T]]) -> None:
        """Run in the worker thread: call `source`, pass on each item until exhausted or stopped."""
        error: BaseException | None = None
        items: Iterator[T] | None = None
        try:
            items = source()
            for item in items:
                if not self._put(item):
                    break
        except BaseException as exc:  # delivered to the consumer, which re-raises it
            error = exc
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator stops producing (and frees what it holds) right here
        self._send(_End(error))

    def _put(self, item: T) -> bool:
        if self.stopped.is_set():
            return False
        self._slots.acquire()  # blocks while the consumer is maxsize items behind
        if self.stopped.is_set() or not self._send(item):
            return False
        if self._lockstep:
            self._asked.acquire()  # until the consumer is done with it (or stops)
        return not self.stopped.is_set()

    def _send(self, item: T | _End) -> bool:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            self.stopped.set()
            return False
        return True

    # -- event loop side -------------------------------------------------------------------------

    def stop(self) -> None:
        """The consumer is gone: make the worker end at its next item (or wake it if blocked)."""
        if not self.stopped.is_set():
            self.stopped.set()
            self._slots.release()
            self._asked.release()

    def __aiter__(self) -> ThreadStream[T]:
        return self

    async def __anext__(self) -> T:
        if self._handed:  # lockstep: done with the last item; the worker goes on
            self._handed = False
            self._asked.release()
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # iterating again after the end stays at the end
            if item.exc is not None:
                raise item.exc
            raise StopAsyncIteration
        self._slots.release()
        self._handed = self._lockstep
        return item
