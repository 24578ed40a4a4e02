"""Telling every replica that keys, users or teams changed, so each forgets its cached keys at once
instead of within `server.key_cache_ttl`.

With `redis_url`, an admin change publishes a small notice on `clawdbot:tenancy` and every process
(its own included) clears its whole key cache when one arrives: admin changes are rare, and a key's
cached principal also carries its user's and team's limits, so clearing everything is both simple
and right. A process also clears it each time its subscription is (re)confirmed, since notices
published while it was not listening are lost. Without Redis, `LocalOnly` does nothing: the
process that made the change has already forgotten its own cache."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import msgspec

from clawdbot.state.redis import KEY_PREFIX, redact, redis_client
from clawdbot.state.redis_pubsub import Subscription, replica_id

if TYPE_CHECKING:
    from clawdbot.state.redis_client import RedisClient

log = logging.getLogger("clawdbot.tenancy")

CHANNEL = "tenancy"
PUBLISH_TIMEOUT_S = 1.0  # an admin change is committed already: past this, only the TTL helps


class Notice(msgspec.Struct, frozen=True):
    replica: str
    at: float  # wall clock, for whoever reads the channel


class Invalidation(Protocol):
    async def start(self) -> None: ...

    async def publish(self) -> bool:
        """Tell the other replicas; False if that could not be done (it is logged, never raised)."""
        ...

    async def close(self) -> None: ...

    def on_reconnect(self, hook: Callable[[], None]) -> None:
        """Also call `hook` each time the subscription is (re)confirmed: Redis may have restarted."""
        ...


class LocalOnly:
    async def start(self) -> None:
        return None

    def on_reconnect(self, hook: Callable[[], None]) -> None:
        return None

    async def publish(self) -> bool:
        return True

    async def close(self) -> None:
        return None


class RedisInvalidation:
    """Owns `client` (closes it). `clear` forgets the whole local key cache."""

    def __init__(self, client: RedisClient, clear: Callable[[], None], *, prefix: str = KEY_PREFIX,
                 where: str = "Redis") -> None:
        self.client = client
        self.channel = prefix + CHANNEL
        self.replica = replica_id()
        self.published = 0
        self.publish_failures = 0
        self._clear = clear
        self._reconnected: list[Callable[[], None]] = []
        self.subscription = Subscription(client, self.channel, self._message, self._subscribed, where)

    async def start(self) -> None:
        self.subscription.start()

    async def publish(self) -> bool:
        notice = msgspec.json.encode(Notice(self.replica, time.time()))
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await self.client.publish(self.channel, notice)
        except Exception as exc:  # Redis down or slow: the change stands, the other replicas see it within their TTL
            self.publish_failures += 1
            log.warning("could not publish a key invalidation on %s via %s (%s: %s); other replicas see "
                        "the change within server.key_cache_ttl", self.channel, self.subscription.where,
                        type(exc).__name__, exc)
            return False
        self.published += 1
        return True

    async def close(self) -> None:
        await self.subscription.close()
        await self.client.aclose(close_connection_pool=True)

    def _message(self, data: bytes) -> None:
        self._clear()

    def on_reconnect(self, hook: Callable[[], None]) -> None:
        self._reconnected.append(hook)

    async def _subscribed(self) -> None:
        self._clear()
        for hook in self._reconnected:
            hook()


def build_invalidation(url: str | None, clear: Callable[[], None], prefix: str = KEY_PREFIX) -> Invalidation:
    """Raises ValueError for a URL redis-py does not understand."""
    if not url:
        return LocalOnly()
    return RedisInvalidation(redis_client(url), clear, prefix=prefix, where=redact(url))
