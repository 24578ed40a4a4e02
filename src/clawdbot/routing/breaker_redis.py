"""Circuit breakers shared by replicas through Redis (`redis_url`).

Each replica keeps its own `MemoryBreaker`s: the hot path (`allow`, `record`) stays synchronous and
local. What is shared are transitions to open and to closed:

- a local one is published in the background on `clawdbot:breakers` (service, state, the wall-clock
  time an open circuit lets trial requests through, the replica) and kept as the service's latest
  state in the hash `clawdbot:breakers:state`, so a replica that starts (or reconnects) later
  adopts the circuits open right now;
- another replica's is applied to the local breaker: open -> open for what is left of the cooldown,
  closed -> closed. Applied transitions are not published again, and a replica ignores its own
  messages: no echo.

Half-open is each replica's own: when a cooldown ends, every replica lets its own `trials` requests
through, and the first verdict published (closed, or open again) is adopted by the others. Wall
clocks are compared, so replicas' clocks should agree to well within a cooldown (NTP does).

Redis down: each replica's breakers keep working alone; the latest local transition per service is
published once Redis is back (an open whose cooldown is over by then is ignored by the others)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from clawdbot.config.schema import Breaker as BreakerSettings
from clawdbot.config.schema import Config
from clawdbot.routing.breaker import CLOSED, HALF_OPEN, OPEN, Listener, MemoryBreaker, MemoryBreakers
from clawdbot.state.redis import KEY_PREFIX, redact, redis_client, redis_prefix, redis_url
from clawdbot.state.redis_pubsub import BACKOFF_MAX_S, BACKOFF_MIN_S, Subscription, replica_id

if TYPE_CHECKING:
    from clawdbot.state.redis_client import RedisClient

log = logging.getLogger("clawdbot.breaker")

CHANNEL = "breakers"
STATE = "breakers:state"  # hash: service -> its latest published Transition
STATE_TTL_S = 86_400  # the hash goes away a day after the last transition anywhere
MAX_REMOTE = 4096  # transitions remembered for services this replica has no breaker for (yet)


class Transition(msgspec.Struct, frozen=True):
    service: str
    state: str  # "open" or "closed"
    until: float  # open: wall-clock time (time.time()) the cooldown ends; closed: 0
    replica: str
    at: float  # wall-clock time of the transition: the latest one wins
    reason: str = ""


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Transition).decode


class SharedBreaker(MemoryBreaker):
    __slots__ = ()

    def adopt(self, t: Transition, now: float) -> None:
        """Take another replica's transition, unless this breaker's state is more recent; `now` is
        monotonic."""
        if self._since() >= t.at:
            return
        if t.state == OPEN:
            remaining = t.until - time.time()
            if remaining <= 0 or not self.settings.enabled:
                return
            if self.state is OPEN:  # already open here: keep the later end
                self.open_until = max(self.open_until, now + remaining)
                return
            self.open_until = now + remaining
            self.opened += 1
            self._move(OPEN, f"opened by replica {t.replica}: {t.reason}", now)
        elif t.state == CLOSED and self.state is not CLOSED:
            self._move(CLOSED, f"closed by replica {t.replica}", now)
        else:
            return
        _, state, reason = self.history[-1]
        self.history[-1] = (t.at, state, reason)  # when it happened, so that older news loses

    def _since(self) -> float:
        """When it last opened or closed (half-open is only the end of a cooldown, not news)."""
        return next((at for at, state, _ in reversed(self.history) if state is not HALF_OPEN), 0.0)


class Lifecycle(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...


class Unshared:
    """Breakers kept in this process only: nothing to start."""

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisBreakers(MemoryBreakers):
    """A BreakerStore whose breakers follow each other across replicas. Owns `client` (closes it)."""

    def __init__(self, client: RedisClient, listener: Listener | None = None, *, prefix: str = KEY_PREFIX,
                 where: str = "Redis") -> None:
        super().__init__(listener)
        self.client = client
        self.replica = replica_id()
        self.channel = prefix + CHANNEL
        self.state_key = prefix + STATE
        self.published = 0
        self.adopted = 0
        self._applying = False
        self._pending: dict[str, Transition] = {}  # the latest unpublished transition per service
        self._wake = asyncio.Event()
        self._remote: dict[str, Transition] = {}  # the latest transition from elsewhere per service
        self._publisher: asyncio.Task[None] | None = None
        self.subscription = Subscription(client, self.channel, self._message, self._resync, where)

    # -- the BreakerStore --------------------------------------------------------------------------

    def get(self, service: str, settings: BreakerSettings) -> MemoryBreaker:
        b = self._breakers.get(service)
        if b is None:
            b = self._breakers[service] = SharedBreaker(service, settings, self._moved)
            seen = self._remote.get(service)
            if seen is not None:
                self._adopt(b, seen)
        elif b.settings != settings:
            b.configure(settings)
        return b

    def status(self) -> dict[str, Any]:
        return {"replica": self.replica, "published": self.published, "adopted": self.adopted,
                "unpublished": len(self._pending), **self.subscription.status()}

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        self.subscription.start()
        if self._publisher is None:
            self._publisher = asyncio.get_running_loop().create_task(self._publish_loop(), name="breaker publisher")
            if self._pending:
                self._wake.set()

    async def close(self) -> None:
        await self.subscription.close()
        task, self._publisher = self._publisher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.aclose(close_connection_pool=True)

    # -- local transitions out --------------------------------------------------------------------

    def _moved(self, service: str, state: str) -> None:
        if self.listener is not None:
            self.listener(service, state)
        if self._applying or (state is not OPEN and state is not CLOSED):
            return
        b = self._breakers.get(service)
        if b is None:
            return
        until = time.time() + max(0.0, b.open_until - time.monotonic()) if state is OPEN else 0.0
        at, _, reason = b.history[-1]
        self._pending[service] = Transition(service, state, until, self.replica, at, reason)
        self._wake.set()

    async def _publish_loop(self) -> None:
        delay, failing = BACKOFF_MIN_S, False
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, {}
            try:
                await self._send(list(batch.values()))
            except Exception as exc:  # Redis down: keep the latest per service, try again later
                for service, t in batch.items():
                    self._pending.setdefault(service, t)
                if not failing:
                    log.warning("cannot publish circuit transitions to %s (%s: %s); retrying with backoff",
                                self.subscription.where, type(exc).__name__, exc)
                failing = True
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, BACKOFF_MAX_S)
                self._wake.set()
                continue
            if failing:
                log.info("circuit transitions are published to %s again", self.subscription.where)
            delay, failing = BACKOFF_MIN_S, False
            self.published += len(batch)

    async def _send(self, batch: list[Transition]) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for t in batch:
                data = _encode(t)
                pipe.hset(self.state_key, t.service, data)  # first: a replica resyncing reads it
                pipe.publish(self.channel, data)
            pipe.expire(self.state_key, STATE_TTL_S)
            await pipe.execute()

    # -- other replicas' transitions in ------------------------------------------------------------

    def _message(self, data: bytes) -> None:
        try:
            t = _decode(data)
        except msgspec.DecodeError:
            log.warning("ignored a malformed message on %s", self.channel)
            return
        self._take(t)

    async def _resync(self) -> None:
        """(Re)subscribed: adopt every service's latest state, since messages may have been missed."""
        for raw in (await self.client.hgetall(self.state_key)).values():
            try:
                self._take(_decode(raw))
            except msgspec.DecodeError:
                continue

    def _take(self, t: Transition) -> None:
        if t.replica == self.replica:
            return
        if t.service not in self._remote and len(self._remote) >= MAX_REMOTE:
            del self._remote[next(iter(self._remote))]
        self._remote[t.service] = t
        b = self._breakers.get(t.service)
        if b is not None:
            self._adopt(b, t)

    def _adopt(self, b: MemoryBreaker, t: Transition) -> None:
        if not isinstance(b, SharedBreaker):
            return
        self._applying = True
        try:
            before = b.state
            b.adopt(t, time.monotonic())
            if b.state is not before:
                self.adopted += 1
        finally:
            self._applying = False


def build_breakers(config: Config, env: Mapping[str, str], listener: Listener) -> tuple[MemoryBreakers, Lifecycle]:
    """The breaker store of a gateway, and what starts and stops its background work. Raises
    ValueError for a Redis URL it cannot use."""
    url = redis_url(config, env)
    if not url:
        return MemoryBreakers(listener), Unshared()
    store = RedisBreakers(redis_client(url), listener, prefix=redis_prefix(config, env), where=redact(url))
    return store, store
