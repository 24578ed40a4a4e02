"""Key-cache invalidation across replicas on the real Redis: two authenticators, each with its own
subscriber, both caching keys for 60 s, so only a notice (or a resubscription) can make them
forget."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
import redis

from clawdbot.core.errors import Unauthorized
from clawdbot.state.keys_base import KeyRecord
from clawdbot.tenancy.authn import KeyAuthenticator
from clawdbot.tenancy.invalidation import RedisInvalidation, build_invalidation
from clawdbot.tenancy.keys import KeyHasher, generate
from clawdbot.tenancy.service import Tenancy
from tests.e2e.harness import closed_port

from .redis_support import REDIS_URL, async_client, fresh_prefix

MASTER = "sk-master-test"
HASHER = KeyHasher(b"secret")


class Keys:
    """The key store's one read, over a dict."""

    def __init__(self) -> None:
        self.keys: dict[str, KeyRecord] = {}

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        return self.keys.get(key_hash)


class Replica:
    """What one gateway process holds: an authenticator caching keys for 60 s, and a subscriber
    whose Redis connections carry `name` (so a test can find and kill them)."""

    def __init__(self, store: Keys, prefix: str) -> None:
        self.name = f"clawdbot-test-{uuid.uuid4().hex[:12]}"
        self.authn = KeyAuthenticator(MASTER, store, HASHER, ttl=60)  # type: ignore[arg-type]
        self.inval = RedisInvalidation(async_client(self.name), self.authn.invalidate, prefix=prefix)
        self.tenancy = Tenancy(self.authn, invalidation=self.inval)

    async def accepts(self, key: str) -> bool:
        try:
            await self.authn.resolve(f"Bearer {key}".encode())
        except Unauthorized:
            return False
        return True


async def until(condition: Callable[[], bool], within: float = 5.0) -> float:
    """Polls `condition` (yielding to the loop) until it holds; the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within, "condition not met in time"
        await asyncio.sleep(0.002)
    return time.monotonic() - started


async def until_refused(replica: Replica, key: str, within: float = 5.0) -> float:
    started = time.monotonic()
    while await replica.accepts(key):
        assert time.monotonic() - started < within, "the key is still accepted"
        await asyncio.sleep(0.002)
    return time.monotonic() - started


def issued(store: Keys) -> tuple[str, str]:
    key = generate()
    h = HASHER.hash(key)
    store.keys[h] = KeyRecord(id="k_1", hint="sk-cb-AAAA...ZZZZ")
    return key, h


def revoke(store: Keys, h: str) -> None:
    store.keys[h] = msgspec.structs.replace(store.keys[h], revoked_at=int(time.time() * 1000))


def kill_connections(name: str) -> int:
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        ids = [c["id"] for c in admin.client_list() if c.get("name") == name]
        for client_id in ids:
            admin.client_kill_filter(_id=client_id)
        return len(ids)
    finally:
        admin.close()


def test_a_notice_clears_every_replicas_cache() -> None:
    with fresh_prefix() as prefix:
        asyncio.run(_notice_clears_every_cache(prefix))


async def _notice_clears_every_cache(prefix: str) -> None:
    store = Keys()
    a, b = Replica(store, prefix), Replica(store, prefix)
    await a.tenancy.start()
    await b.tenancy.start()
    try:
        await until(lambda: a.inval.subscription.live and b.inval.subscription.live)
        key, h = issued(store)
        assert await a.accepts(key) and await b.accepts(key)
        revoke(store, h)
        assert await a.accepts(key) and await b.accepts(key)  # both trust their cache for 60 s
        started = time.monotonic()
        await a.tenancy.changed()  # what the admin API calls after the change
        assert not await a.accepts(key)  # A forgot at once, before any message
        await until_refused(b, key)
        print(f"\nnotice -> refused on the other replica: {(time.monotonic() - started) * 1000:.1f} ms")
        assert time.monotonic() - started < 1.0
        assert a.inval.published == 1 and b.inval.subscription.messages == 1
    finally:
        await a.tenancy.close()
        await b.tenancy.close()


def test_a_dropped_subscriber_resubscribes_and_forgets_what_it_may_have_missed(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="clawdbot.redis")
    with fresh_prefix() as prefix:
        asyncio.run(_resubscribes(prefix))
    text = caplog.text
    assert "lost clawdbot-test" in text and "again after" in text


async def _resubscribes(prefix: str) -> None:
    store = Keys()
    a, b = Replica(store, prefix), Replica(store, prefix)
    await a.tenancy.start()
    await b.tenancy.start()
    try:
        await until(lambda: a.inval.subscription.live and b.inval.subscription.live)
        key, h = issued(store)
        assert await a.accepts(key) and await b.accepts(key)
        revoke(store, h)  # and no notice: as if it were published while B was cut off
        assert kill_connections(b.name) >= 1
        await until(lambda: b.inval.subscription.subscriptions >= 2)
        assert not await b.accepts(key)  # cleared on resubscribing
        assert await a.accepts(key)  # A was not cut off: nothing told it (its TTL is 60 s)
        assert b.inval.subscription.live
        # B's new subscription works: a notice from B reaches A
        other, h2 = issued(store)
        assert await a.accepts(other)
        revoke(store, h2)
        await b.tenancy.changed()
        await until_refused(a, other, within=1.0)
    finally:
        await a.tenancy.close()
        await b.tenancy.close()


def test_redis_unreachable_never_blocks_and_never_logs_the_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="clawdbot")
    asyncio.run(_unreachable(lambda: caplog.text))
    assert "cannot subscribe to clawdbot:tenancy on redis://user:***@127.0.0.1" in caplog.text
    assert "could not publish a key invalidation" in caplog.text
    assert "hunter2" not in caplog.text


async def _unreachable(caplog_text: Callable[[], str]) -> None:
    store = Keys()
    authn = KeyAuthenticator(MASTER, store, HASHER, ttl=60)  # type: ignore[arg-type]
    inval = build_invalidation(f"redis://user:hunter2@127.0.0.1:{closed_port()}/0", authn.invalidate)
    assert isinstance(inval, RedisInvalidation)
    tenancy = Tenancy(authn, invalidation=inval)
    await tenancy.start()
    key, h = issued(store)
    assert (await authn.resolve(f"Bearer {key}".encode())).key_id == "k_1"
    revoke(store, h)
    started = time.monotonic()
    await tenancy.changed()  # the publish fails: logged, not raised, and this process forgot at once
    assert time.monotonic() - started < 1.5
    with pytest.raises(Unauthorized):
        await authn.resolve(f"Bearer {key}".encode())
    status = inval.subscription.status
    await until(lambda: "cannot subscribe" in caplog_text())
    assert status()["running"] and not status()["live"] and status()["subscriptions"] == 0
    assert inval.publish_failures == 1
    started = time.monotonic()
    await tenancy.close()
    assert time.monotonic() - started < 1.0


def test_without_a_redis_url_redis_is_never_imported(tmp_path: Path) -> None:
    code = """
import sys
from clawdbot.config.schema import Config, Server
from clawdbot.pipeline.gateway import Gateway
from clawdbot.tenancy.service import build_tenancy
tenancy = build_tenancy(Server(master_key="sk-x"), Config(), {"CLAWDBOT_DATA_DIR": sys.argv[1]})
gateway = Gateway(Config())
loaded = sorted(m for m in sys.modules if m == "redis" or m.startswith("redis."))
assert not loaded, loaded
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDBOT_")}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
