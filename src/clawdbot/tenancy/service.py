"""The tenancy of one process, from the Config: the key store (on the same database as the chat
store), the hasher and the authenticator. Without a master key there is nothing to build: auth is
off and the admin API refuses everything, as before tenancy."""

from __future__ import annotations

from collections.abc import Mapping

from clawdbot.config.schema import Config, Server
from clawdbot.state.build import database_url
from clawdbot.state.keys_base import KeyStore
from clawdbot.state.lazy import lazy_key_store, lazy_spend_store
from clawdbot.state.redis import redis_prefix, redis_url
from clawdbot.state.spend_base import SpendStore
from clawdbot.tenancy.authn import KeyAuthenticator
from clawdbot.tenancy.invalidation import Invalidation, LocalOnly, build_invalidation
from clawdbot.tenancy.keys import KeyHasher, hashing_secret


class Tenancy:
    def __init__(self, authn: KeyAuthenticator, store: KeyStore | None = None, hasher: KeyHasher | None = None,
                 spend: SpendStore | None = None, invalidation: Invalidation | None = None) -> None:
        self.authn = authn
        self.store = store  # None: no virtual keys (no master key, or chats kept in memory)
        self.hasher = hasher
        self.spend = spend  # None under the same conditions as `store`
        # tells the other replicas about admin changes (tenancy/invalidation.py); no Redis: nothing
        self.invalidation: Invalidation = invalidation if invalidation is not None else LocalOnly()

    async def start(self) -> None:
        # Nothing: the key store loads the SQL layer and opens the database at its first use (a
        # virtual key, the admin API), so the master-key path, and a proxy that never sees a
        # virtual key, keep no file and no SQLAlchemy in memory. With Redis, the invalidation
        # subscriber starts (in the background: Redis down never delays start-up).
        await self.invalidation.start()

    async def changed(self) -> None:
        """After an admin change to keys, users or teams: this process forgets its cached keys at
        once, and so does every other replica (when Redis is configured)."""
        self.authn.invalidate()
        await self.invalidation.publish()

    async def close(self) -> None:
        await self.invalidation.close()
        if self.store is not None:
            await self.store.close()
        if self.spend is not None:
            await self.spend.close()


def build_tenancy(server: Server, config: Config, env: Mapping[str, str]) -> Tenancy:
    if not server.master_key:
        return Tenancy(KeyAuthenticator(None, None, None))
    url = env.get("CLAWDBOT_DATABASE_URL") or config.database_url
    if url is not None and url.startswith("memory:"):
        return Tenancy(KeyAuthenticator(server.master_key, None, None))
    hasher = KeyHasher(hashing_secret(env.get("CLAWDBOT_KEY_SECRET") or server.key_secret, server.master_key))
    db = database_url(config, env)
    store = lazy_key_store(db)
    authn = KeyAuthenticator(server.master_key, store, hasher, ttl=server.key_cache_ttl)
    invalidation = build_invalidation(redis_url(config, env), authn.invalidate, redis_prefix(config, env))
    return Tenancy(authn, store, hasher, spend=lazy_spend_store(db), invalidation=invalidation)
