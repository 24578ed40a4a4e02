"""The answering attempt's hold on its service (limiter slot, breaker permit, runtime lease), and
`Relay`, the stream that gives it back when the stream ends however it ends.

A stream's upstream call is opened (and its first chunk read) before the caller starts iterating,
so the hold cannot live in an async generator's `finally` (a generator never started never runs
it). `Relay` is a plain object: `aclose()` releases whether or not iteration began, and so does the
garbage collector as a last resort."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any, Generic, TypeVar

from clawdbot.core.errors import GatewayError, UpstreamError
from clawdbot.pipeline.runtime import Runtime
from clawdbot.routing.credentials import scrub
from clawdbot.routing.upstream import Deployment

T = TypeVar("T")


def verdict(exc: BaseException) -> bool | None:
    """What an error says about the service's health: False (a failure the breaker counts), True
    (it answered properly: the request was at fault), None (neither: a 429, a cancellation, a
    limit of our own)."""
    if not isinstance(exc, GatewayError):
        return None if isinstance(exc, asyncio.CancelledError | GeneratorExit) else False
    if isinstance(exc, UpstreamError):
        s = exc.upstream_status
        if s is None or s >= 500:
            return False
        return None if s == 429 else True
    if exc.code in ("overloaded", "circuit_open"):
        return None
    return not exc.retryable


class Attempt:
    __slots__ = ("closed", "dep", "permit", "rt")

    def __init__(self, dep: Deployment, permit: int, rt: Runtime) -> None:
        self.dep = dep
        self.permit = permit
        self.rt = rt
        self.closed = False

    def close(self, ok: bool | None) -> None:
        if self.closed:
            return
        self.closed = True
        dep = self.dep
        dep.upstream.limiter.release()
        if dep.cap is not None:
            dep.cap.release()
        dep.upstream.breaker.record(self.permit, ok, time.monotonic())
        self.rt.leave()


class Relay(AsyncGenerator[T, None], Generic[T]):
    """`first`, then the rest of `rest`; closes `attempt` at the end, on error, on aclose()."""

    __slots__ = ("_attempt", "_first", "_rest")

    def __init__(self, first: T | None, rest: AsyncGenerator[T, None], attempt: Attempt) -> None:
        self._first = first
        self._rest = rest
        self._attempt = attempt

    async def __anext__(self) -> T:
        first = self._first
        if first is not None:
            self._first = None
            return first
        if self._attempt.closed:
            raise StopAsyncIteration
        try:
            return await self._rest.__anext__()
        except StopAsyncIteration:
            self._attempt.close(True)
            raise
        except BaseException as exc:
            if isinstance(exc, GatewayError):  # an error mid-stream: as _attempt does for the call's
                scrub(exc, self._attempt.dep.upstream.secrets)
            self._attempt.close(verdict(exc))
            raise

    async def asend(self, value: None) -> T:
        return await self.__anext__()

    async def athrow(self, *args: Any) -> T:
        self._attempt.close(None)
        await self._rest.aclose()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._first = None
        try:
            await self._rest.aclose()
        finally:
            self._attempt.close(None)

    def __del__(self) -> None:
        if not self._attempt.closed:
            self._attempt.close(None)
