"""`Authorization: Bearer ...` -> Principal.

The master key is compared in constant time and never touches the database. A `sk-cb-` key is
hashed (HMAC) and looked up through a small in-process cache: a hit younger than `ttl` seconds is a
dict lookup; a miss or a stale entry reads the store. So a revoke reaches this process within
`ttl`. Other replicas see it within their own `ttl` too, or at once with `redis_url`: the pub/sub
listener (tenancy/invalidation.py) calls `invalidate`. While the database is unreachable, keys already cached
keep working on their last reading; unknown ones get 503."""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import time
from collections.abc import Callable

from clawdbot.core.errors import Unauthorized
from clawdbot.state.keys_base import KeyRecord, KeyStore, TeamRecord, UserRecord
from clawdbot.tenancy.errors import StateUnavailable
from clawdbot.tenancy.keys import PREFIX, KeyHasher
from clawdbot.tenancy.principal import ANONYMOUS, MASTER, Principal, from_key

log = logging.getLogger("clawdbot.tenancy")

Lookup = tuple[KeyRecord | None, Principal | None]
Cached = tuple[float, KeyRecord | None, Principal | None]  # (fetched at, key or None: no such key, principal)

MAX_CACHED = 10_000  # keys (and unknown hashes) remembered; the oldest entry goes first
MISSING = "Missing API key: send 'Authorization: Bearer <key>'."


class KeyAuthenticator:
    def __init__(self, master_key: str | None, store: KeyStore | None, hasher: KeyHasher | None,
                 ttl: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.required = bool(master_key)
        self._bearer = f"Bearer {master_key}".encode() if master_key else b""
        self._store = store
        self._hasher = hasher
        self._ttl = ttl
        self._clock = clock
        # hash -> (fetched at, the key or None for "no such key", its Principal built once)
        self._cache: dict[str, Cached] = {}
        self._inflight: dict[str, asyncio.Future[Lookup]] = {}
        self._generation = 0  # bumped by invalidate(): a read that started before is not cached

    async def resolve(self, authorization: bytes) -> Principal:
        """Raises Unauthorized (401) with the reason a key is refused."""
        if not self.required:
            return ANONYMOUS  # no master key: auth is off, as before tenancy
        if hmac.compare_digest(authorization, self._bearer):
            return MASTER
        if not authorization:
            raise Unauthorized(MISSING)
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        key_hash = self.hash_of(token) if scheme.lower() == "bearer" else None
        if key_hash is None:
            raise Unauthorized("Invalid API key.")
        return await self.resolve_hash(key_hash)

    def hash_of(self, token: str) -> str | None:
        """The stored hash of a virtual key (None: not one, or no key store)."""
        token = token.strip()
        if not token.startswith(PREFIX) or self._store is None or self._hasher is None:
            return None
        return self._hasher.hash(token)

    async def resolve_hash(self, key_hash: str) -> Principal:
        """The virtual key with this hash (the chat page's login cookie carries it, never the key):
        Unauthorized when it is unknown, revoked or expired."""
        key, principal = await self._lookup(key_hash)
        if key is None or principal is None:
            raise Unauthorized("Invalid API key.")
        if key.revoked_at is not None:
            raise Unauthorized(f"This API key ({key.hint}) was revoked.", code="key_revoked")
        if key.expires_at is not None and key.expires_at <= time.time() * 1000:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(key.expires_at / 1000))
            raise Unauthorized(f"This API key ({key.hint}) expired at {stamp}.", code="key_expired")
        return principal

    async def _lookup(self, key_hash: str) -> tuple[KeyRecord | None, Principal | None]:
        now = self._clock()
        hit = self._cache.get(key_hash)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1], hit[2]
        # One read per key however many requests want it at once (under load, every request that
        # misses would otherwise read the store, and the cache would never catch up). A task, so a
        # caller that goes away does not cancel it for the others.
        pending = self._inflight.get(key_hash)
        if pending is None:
            pending = self._inflight[key_hash] = asyncio.ensure_future(self._fetch(key_hash, hit))
            pending.add_done_callback(functools.partial(self._fetched, key_hash))
        return await asyncio.shield(pending)

    @staticmethod
    def _fetched(key_hash: str, task: asyncio.Future[Lookup]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved here too: every caller may have gone away

    async def _fetch(self, key_hash: str, hit: Cached | None) -> Lookup:
        try:
            return await self._read(key_hash, hit)
        finally:
            self._inflight.pop(key_hash, None)

    async def _read(self, key_hash: str, hit: Cached | None) -> Lookup:
        assert self._store is not None
        generation, fetched_at = self._generation, self._clock()
        try:
            key = await self._store.key_by_hash(key_hash)
            principal = None if key is None else await self._principal(key)
        except Exception as exc:
            # The database is down: a key seen before keeps working on what was last read (it
            # cannot be revoked meanwhile either: that is a write); an unknown one cannot be checked.
            if hit is not None:
                log.warning("key store unreachable (%s); serving a cached key", type(exc).__name__)
                return hit[1], hit[2]
            log.error("key store unreachable (%s: %s)", type(exc).__name__, str(exc)[:200])
            raise StateUnavailable("The key store is unreachable; try again shortly.",
                                   headers={"Retry-After": "1"}) from None
        if generation == self._generation:  # not cached when an invalidation came meanwhile
            self._cache.pop(key_hash, None)  # re-inserted last: the dict's order is the age order
            if len(self._cache) >= MAX_CACHED:
                del self._cache[next(iter(self._cache))]
            self._cache[key_hash] = (fetched_at, key, principal)
        return key, principal

    async def _principal(self, key: KeyRecord) -> Principal:
        """The key with its owners' limits (cached with it, so a change of a user's or team's limits
        is seen as soon as a change of the key's own)."""
        assert self._store is not None
        user = await self._store.get("user", key.user_id) if key.user_id else None
        team_id = key.team_id or (user.team_id if isinstance(user, UserRecord) else None)
        team = await self._store.get("team", team_id) if team_id else None
        return from_key(key, user if isinstance(user, UserRecord) else None,
                        team if isinstance(team, TeamRecord) else None)

    def invalidate(self, key_hash: str | None = None) -> None:
        """Forget one key (or all): its next use reads the store."""
        self._generation += 1
        if key_hash is None:
            self._cache.clear()
        else:
            self._cache.pop(key_hash, None)
