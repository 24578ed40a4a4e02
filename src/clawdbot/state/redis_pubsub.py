"""A Redis pub/sub subscription that keeps itself alive, for the state several replicas share (key
invalidation, circuit breakers).

One task per channel. It calls `on_subscribed` each time the server confirms the subscription (the
first time and after every reconnection: whatever was published meanwhile is lost, so the owner
resynchronises) and `on_message` for each message. A dropped or silent connection is replaced,
with exponential backoff and jitter. Nothing ends the task but `close()`: an error is logged when
the state changes (never the URL's password), and the gateway keeps serving without it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clawdbot.state.redis_client import PubSub, RedisClient

log = logging.getLogger("clawdbot.redis")

BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
POLL_S = 1.0  # the longest wait for one message, then the liveness check runs
PING_AFTER_S = 10.0  # after this much silence, ask the server whether the connection still works
PONG_TIMEOUT_S = 5.0  # ...and give the connection up if it does not answer in this time

OnMessage = Callable[[bytes], None]
OnSubscribed = Callable[[], Awaitable[None]]


def replica_id() -> str:
    """Names this process in what it publishes (so it can ignore its own messages) and in logs."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Subscription:
    def __init__(self, client: RedisClient, channel: str, on_message: OnMessage, on_subscribed: OnSubscribed,
                 where: str) -> None:
        self.client = client
        self.channel = channel
        self.where = where  # the redacted URL, for logs
        self.subscriptions = 0  # confirmed: the first, then one per reconnection
        self.messages = 0
        self.live = False
        self._on_message = on_message
        self._on_subscribed = on_subscribed
        self._task: asyncio.Task[None] | None = None
        self._down_since: float | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"subscriber {self.channel}")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.live = False

    def status(self) -> dict[str, Any]:
        running = self._task is not None and not self._task.done()
        return {"channel": self.channel, "running": running, "live": self.live,
                "subscriptions": self.subscriptions, "messages": self.messages}

    async def _run(self) -> None:
        delay = BACKOFF_MIN_S
        while True:
            try:
                await self._listen()
            except Exception as exc:  # whatever it is, the subscriber must outlive it
                if self.live:
                    delay = BACKOFF_MIN_S
                self._lost(exc)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # jitter: replicas do not reconnect in step
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def _listen(self) -> None:
        pubsub = self.client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            await self._receive(pubsub)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _receive(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        heard, pinged = loop.time(), None
        while True:
            msg = await pubsub.get_message(within=POLL_S)
            now = loop.time()
            if msg is not None:
                heard, pinged = now, None
                await self._handle(msg)
            elif pinged is not None and now - pinged > PONG_TIMEOUT_S:
                raise ConnectionError(f"no answer to PING within {PONG_TIMEOUT_S:g}s")
            elif pinged is None and now - heard > PING_AFTER_S:
                await pubsub.ping()
                pinged = now

    async def _handle(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "message":
            self.messages += 1
            try:
                self._on_message(msg["data"])
            except Exception:
                log.exception("handling a message on %s failed", self.channel)
        elif kind == "subscribe":
            # Confirmed: resynchronise before reading on.
            await self._on_subscribed()
            self.subscriptions += 1
            if not self.live:
                self._up()

    def _up(self) -> None:
        self.live = True
        if self._down_since is None:
            log.info("subscribed to %s on %s", self.channel, self.where)
        else:
            log.info("subscribed to %s on %s again after %.1fs", self.channel, self.where,
                     time.monotonic() - self._down_since)
            self._down_since = None

    def _lost(self, exc: Exception) -> None:
        if self.live or self._down_since is None:  # log the change, not every retry
            verb = "lost" if self.live else "cannot subscribe to"
            log.warning("%s %s on %s (%s: %s); retrying with backoff", verb, self.channel, self.where,
                        type(exc).__name__, exc)
            self._down_since = time.monotonic()
        else:
            log.debug("still no subscription to %s: %s: %s", self.channel, type(exc).__name__, exc)
        self.live = False
