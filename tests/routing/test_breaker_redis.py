"""Breakers shared through the real Redis: a circuit one replica opens is open on the others for the
rest of its cooldown, a close is adopted, nothing echoes, and a replica starting later adopts what
is open. Replicas here are RedisBreakers stores in one process, each with its own connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import msgspec

from clawdbot.config.schema import Breaker as Settings
from clawdbot.routing.breaker import CLOSED, DENY, HALF_OPEN, OPEN, PASS, SLACK, TRIAL
from clawdbot.routing.breaker_redis import RedisBreakers, SharedBreaker, Transition
from clawdbot.state.redis import redis_client
from clawdbot.state.redis_client import RedisClient
from tests.e2e.harness import closed_port
from tests.tenancy.redis_support import async_client, fresh_prefix

SETTINGS = Settings(failures=2, cooldown=30)


class Replica:
    def __init__(self, prefix: str, client: RedisClient | None = None) -> None:
        self.moves: list[tuple[str, str]] = []
        self.store = RedisBreakers(client or async_client(), lambda s, st: self.moves.append((s, st)), prefix=prefix)


async def until(condition: Callable[[], bool], within: float = 5.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within, "condition not met in time"
        await asyncio.sleep(0.002)
    return time.monotonic() - started


def fail(store: RedisBreakers, service: str, times: int, settings: Settings = SETTINGS) -> None:
    b = store.get(service, settings)
    for _ in range(times):
        now = time.monotonic()
        b.record(b.allow(now), False, now)


def test_open_and_close_travel_to_the_other_replica_without_echo() -> None:
    with fresh_prefix() as prefix:
        asyncio.run(_open_and_close(prefix))


async def _open_and_close(prefix: str) -> None:
    a, b = Replica(prefix), Replica(prefix)
    quick = Settings(failures=2, cooldown=0.3)
    for r in (a, b):
        r.store.get("svc", quick)
        await r.store.start()
    try:
        await until(lambda: a.store.subscription.live and b.store.subscription.live)
        fail(a.store, "svc", 2, quick)
        on_b = b.store.get("svc", quick)
        took = await until(lambda: on_b.state is OPEN, within=1.0)
        print(f"\nopen on A -> open on B: {took * 1000:.1f} ms")
        assert b.moves == [("svc", OPEN)] and on_b.allow(time.monotonic()) == DENY
        assert "opened by replica" in on_b.snapshot(time.monotonic())["transitions"][-1]["reason"]
        # A's cooldown ends; its trial succeeds and closes it; B follows
        on_a = a.store.get("svc", quick)
        await until(lambda: on_a.allow(time.monotonic()) == TRIAL)
        on_a.record(TRIAL, True, time.monotonic())
        assert on_a.state is CLOSED
        await until(lambda: on_b.state is CLOSED, within=1.0)
        assert b.moves == [("svc", OPEN), ("svc", CLOSED)] and on_b.allow(time.monotonic()) == PASS
        await until(lambda: a.store.published == 2)
        assert b.store.published == 0  # what B adopted, it did not publish again
        assert a.moves == [("svc", OPEN), ("svc", HALF_OPEN), ("svc", CLOSED)]  # nothing came back to A
        assert a.store.adopted == 0 and b.store.adopted == 2
    finally:
        await a.store.close()
        await b.store.close()


def test_a_replica_starting_later_adopts_an_open_circuit_for_the_rest_of_its_cooldown() -> None:
    with fresh_prefix() as prefix:
        asyncio.run(_late_joiner(prefix))


async def _late_joiner(prefix: str) -> None:
    a = Replica(prefix)
    a.store.get("svc", SETTINGS)
    await a.store.start()
    try:
        fail(a.store, "svc", 2)
        await until(lambda: a.store.published == 1)
        late = Replica(prefix)
        b = late.store.get("svc", SETTINGS)
        await late.store.start()
        try:
            await until(lambda: b.state is OPEN, within=1.0)
            assert 28 < b.retry_after(time.monotonic()) <= 30
            c = late.store.get("not-yet-configured", SETTINGS)
            assert c.state is CLOSED
            # a service configured after the transition arrived (a reload) adopts it when built
            fail(a.store, "added", 2)
            await until(lambda: late.store.subscription.messages == 1, within=1.0)
            assert late.store.get("added", SETTINGS).state is OPEN
        finally:
            await late.store.close()
    finally:
        await a.store.close()


def test_older_news_loses_to_a_newer_local_state() -> None:
    b = SharedBreaker("svc", SETTINGS)
    now, wall = time.monotonic(), time.time()
    b.adopt(Transition("svc", OPEN, wall + 10, "r2", wall - 5), now)
    assert b.state is OPEN and 9 < b.retry_after(now) <= 10
    b.adopt(Transition("svc", CLOSED, 0.0, "r2", wall - 6), now)  # older than the open: ignored
    assert b.state is OPEN
    b.adopt(Transition("svc", CLOSED, 0.0, "r3", wall - 4), now)
    assert b.state is CLOSED
    b.adopt(Transition("svc", OPEN, wall - 1, "r2", wall - 3), now)  # its cooldown is over: nothing to adopt
    assert b.state is CLOSED
    disabled = SharedBreaker("svc", Settings(enabled=False))
    disabled.adopt(Transition("svc", OPEN, wall + 10, "r2", wall), now)
    assert disabled.state is CLOSED


def test_an_adopted_open_circuit_frees_with_the_same_tolerance() -> None:
    b = SharedBreaker("svc", SETTINGS)
    now, wall = time.monotonic(), time.time()
    b.adopt(Transition("svc", OPEN, wall + 1, "r2", wall), now)
    assert b.state is OPEN
    end = b.open_until
    assert b.allow(end - 0.1) == DENY and b.retry_after(end - 0.1) > SLACK
    assert b.retry_after(end - 0.001) == 0.0 and b.allow(end - 0.001) == TRIAL  # a wait woken 1 ms early
    throttled = SharedBreaker("other", SETTINGS)
    throttled.throttle(now + 5)
    assert throttled.allow(now + 5 - 0.1) == DENY
    assert throttled.allow(now + 5 - 0.001) == PASS and throttled.retry_after(now + 5 - 0.001) == 0.0


def test_a_malformed_message_is_ignored() -> None:
    with fresh_prefix() as prefix:
        asyncio.run(_malformed(prefix))


async def _malformed(prefix: str) -> None:
    r = Replica(prefix)
    b = r.store.get("svc", SETTINGS)
    await r.store.start()
    publisher = async_client()
    try:
        await until(lambda: r.store.subscription.live)
        await publisher.publish(prefix + "breakers", b"not json")
        until_wall = time.time() + 30
        good = msgspec.json.encode(Transition("svc", OPEN, until_wall, "elsewhere", time.time(), "test"))
        await publisher.publish(prefix + "breakers", good)
        await until(lambda: b.state is OPEN, within=1.0)
        assert r.store.subscription.messages == 2 and r.store.subscription.live
    finally:
        await publisher.aclose()
        await r.store.close()


def test_redis_unreachable_keeps_breakers_local_and_publishes_when_it_can() -> None:
    asyncio.run(_unreachable())


async def _unreachable() -> None:
    r = Replica("unused:", redis_client(f"redis://127.0.0.1:{closed_port()}/0"))
    b = r.store.get("svc", SETTINGS)
    await r.store.start()
    fail(r.store, "svc", 2)
    assert b.state is OPEN and b.allow(time.monotonic()) == DENY  # the hot path never waited on Redis
    await until(lambda: r.store.status()["unpublished"] == 1 and not r.store.subscription.live)
    started = time.monotonic()
    await r.store.close()
    assert time.monotonic() - started < 1.0
