"""KeyAuthenticator: the master key, virtual keys through the TTL cache, and why a key is refused.
A fake store counts its reads; a fake clock moves the cache's time."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import pytest

from clawdbot.core.errors import Unauthorized
from clawdbot.state.keys_base import KeyRecord
from clawdbot.tenancy.authn import KeyAuthenticator
from clawdbot.tenancy.keys import KeyHasher, generate
from clawdbot.tenancy.principal import ANONYMOUS, MASTER

MASTER_KEY = "sk-master-test"


class FakeStore:
    def __init__(self) -> None:
        self.keys: dict[str, KeyRecord] = {}
        self.reads = 0

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        self.reads += 1
        return self.keys.get(key_hash)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def setup(**fields: Any) -> tuple[KeyAuthenticator, FakeStore, Clock, str, str]:
    store, clock, hasher = FakeStore(), Clock(), KeyHasher(b"secret")
    key = generate()
    h = hasher.hash(key)
    store.keys[h] = KeyRecord(id="k_1", hint="sk-cb-AAAA...ZZZZ", **fields)
    authn = KeyAuthenticator(MASTER_KEY, store, hasher, ttl=1.0, clock=clock)  # type: ignore[arg-type]
    return authn, store, clock, key, h


def resolve(authn: KeyAuthenticator, value: str) -> Any:
    return asyncio.run(authn.resolve(value.encode()))


def test_without_a_master_key_everyone_is_anonymous() -> None:
    assert resolve(KeyAuthenticator(None, None, None), "") is ANONYMOUS


def test_the_master_key_never_reads_the_store() -> None:
    authn, store, *_ = setup()
    assert resolve(authn, f"Bearer {MASTER_KEY}") is MASTER
    assert store.reads == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "Missing API key"),
        ("Bearer wrong", "Invalid API key"),
        ("Basic sk-cb-abc", "Invalid API key"),
        ("Bearer sk-cb-unknown", "Invalid API key"),
    ],
)
def test_refusals(value: str, message: str) -> None:
    authn, *_ = setup()
    with pytest.raises(Unauthorized, match=message):
        resolve(authn, value)


def test_a_key_is_cached_for_the_ttl_then_read_again() -> None:
    authn, store, clock, key, h = setup(tags=["gpu"])
    p = resolve(authn, f"Bearer {key}")
    assert p.key_id == "k_1" and p.tags == ("gpu",)
    assert resolve(authn, f"Bearer {key}") is p  # a hit: the same Principal, no read
    assert store.reads == 1
    store.keys[h] = msgspec.structs.replace(store.keys[h], revoked_at=1)
    clock.now += 0.5
    assert resolve(authn, f"Bearer {key}") is p  # still cached
    clock.now += 0.6
    with pytest.raises(Unauthorized, match="revoked") as err:
        resolve(authn, f"Bearer {key}")
    assert err.value.code == "key_revoked" and store.reads == 2


def test_invalidate_forgets_at_once() -> None:
    authn, store, _, key, h = setup()
    resolve(authn, f"Bearer {key}")
    store.keys[h] = msgspec.structs.replace(store.keys[h], revoked_at=1)
    authn.invalidate(h)
    with pytest.raises(Unauthorized, match="revoked"):
        resolve(authn, f"Bearer {key}")


def test_unknown_keys_are_cached_too() -> None:
    authn, store, *_ = setup()
    for _ in range(3):
        with pytest.raises(Unauthorized):
            resolve(authn, "Bearer sk-cb-nope")
    assert store.reads == 1


def test_an_expired_key_says_when() -> None:
    authn, _, _, key, _ = setup(expires_at=int(time.time() * 1000) - 60_000)
    with pytest.raises(Unauthorized, match=r"expired at \d{4}-\d\d-\d\dT") as err:
        resolve(authn, f"Bearer {key}")
    assert err.value.code == "key_expired"


class SlowStore(FakeStore):
    """Holds every read until released, so many requests can miss the cache at once."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        self.reads += 1
        found = self.keys.get(key_hash)  # what the database said when the read ran
        self.entered.set()
        await self.release.wait()
        return found


def test_concurrent_misses_read_the_store_once() -> None:
    store, hasher = SlowStore(), KeyHasher(b"secret")
    key = generate()
    store.keys[hasher.hash(key)] = KeyRecord(id="k_1", hint="sk-cb-AAAA...ZZZZ")
    authn = KeyAuthenticator(MASTER_KEY, store, hasher)  # type: ignore[arg-type]

    async def main() -> None:
        waiting = [asyncio.create_task(authn.resolve(f"Bearer {key}".encode())) for _ in range(50)]
        await store.entered.wait()  # the read runs; every task started before it waits on it
        waiting[0].cancel()  # one caller going away does not cancel the read for the others
        store.release.set()
        done = await asyncio.gather(*waiting[1:])
        assert {p.key_id for p in done} == {"k_1"}
        assert store.reads == 1

    asyncio.run(main())


def test_a_read_that_an_invalidation_overtook_is_not_cached() -> None:
    store, hasher = SlowStore(), KeyHasher(b"secret")
    key = generate()
    h = hasher.hash(key)
    store.keys[h] = KeyRecord(id="k_1", hint="sk-cb-AAAA...ZZZZ")
    authn = KeyAuthenticator(MASTER_KEY, store, hasher)  # type: ignore[arg-type]

    async def main() -> None:
        first = asyncio.create_task(authn.resolve(f"Bearer {key}".encode()))
        await store.entered.wait()
        store.keys[h] = msgspec.structs.replace(store.keys[h], revoked_at=1)
        authn.invalidate()  # the revoke lands while the read above is in flight
        store.release.set()
        assert (await first).key_id == "k_1"  # that request started before the revoke
        with pytest.raises(Unauthorized, match="revoked"):
            await authn.resolve(f"Bearer {key}".encode())

    asyncio.run(main())
