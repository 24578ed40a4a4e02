"""A service's in-flight limit with a bounded FIFO wait queue.

`try_acquire()` is the hot path (no await, no allocation). Only when the service is full does a
request wait, at most `max_queue` of them and for at most `queue_timeout` seconds; beyond either it
gets `Overloaded` (503 with Retry-After), which the router treats like any retryable failure: the
next deployment is tried. Memory stays bounded by `max_queue` futures per service.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib

from clawdbot.core.errors import Overloaded

RETRY_AFTER = "1"  # seconds a client is asked to wait when a queue is full


class Limiter:
    __slots__ = ("_waiters", "inflight", "max_inflight", "max_queue", "name", "timeout")

    def __init__(self, name: str, max_inflight: int, max_queue: int = 0, timeout: float = 10.0) -> None:
        self.name = name
        self.max_inflight = max_inflight
        self.max_queue = max_queue
        self.timeout = timeout
        self.inflight = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_acquire(self) -> bool:
        if self.inflight < self.max_inflight and not self._waiters:
            self.inflight += 1
            return True
        return False

    async def acquire(self) -> None:
        """A slot, waiting in the queue if need be."""
        if self.try_acquire():
            return
        if len(self._waiters) >= self.max_queue:
            raise self.overloaded(f"{self.max_queue} requests are already waiting")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            async with asyncio.timeout(self.timeout):
                await fut
        except BaseException as exc:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over just as we gave up: pass it on
            else:
                fut.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            if isinstance(exc, TimeoutError):
                raise self.overloaded(f"no slot freed up within {self.timeout:g}s") from None
            raise

    def release(self) -> None:
        waiters = self._waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(None)  # the slot goes straight to the next in line
                return
        self.inflight -= 1

    def overloaded(self, why: str) -> Overloaded:
        return Overloaded(
            f"service {self.name!r} is at its limit of {self.max_inflight} requests in flight and {why}",
            headers={"Retry-After": RETRY_AFTER},
        )


class Unlimited:
    """The limiter of a service without `limits.max_inflight`: always a slot, nothing to count."""

    __slots__ = ("name",)
    inflight = 0
    max_inflight = None
    waiting = 0

    def __init__(self, name: str) -> None:
        self.name = name

    def try_acquire(self) -> bool:
        return True

    async def acquire(self) -> None:
        return None

    def release(self) -> None:
        return None
