"""The tenancy of one process, from the Config: the key store (on the same database as the chat
store), the hasher and the authenticator. Without a master key there is nothing to build: auth is
off and the admin API refuses everything, as before tenancy."""

from __future__ import annotations

from collections.abc import Mapping

from clawdbot.config.schema import Config, Server
from clawdbot.state.build import database_url
from clawdbot.state.keys_base import KeyStore
from clawdbot.state.keys_sql import SqlKeyStore
from clawdbot.state.sql import Database
from clawdbot.tenancy.authn import KeyAuthenticator
from clawdbot.tenancy.keys import KeyHasher, hashing_secret


class Tenancy:
    def __init__(self, authn: KeyAuthenticator, store: KeyStore | None = None, hasher: KeyHasher | None = None) -> None:
        self.authn = authn
        self.store = store  # None: no virtual keys (no master key, or chats kept in memory)
        self.hasher = hasher

    async def start(self) -> None:
        # Nothing: the key store opens the database at its first use (a virtual key, the admin
        # API), so the master-key path, and a proxy that never sees a virtual key, keep no file.
        return None

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()


def build_tenancy(server: Server, config: Config, env: Mapping[str, str]) -> Tenancy:
    if not server.master_key:
        return Tenancy(KeyAuthenticator(None, None, None))
    url = env.get("CLAWDBOT_DATABASE_URL") or config.database_url
    if url is not None and url.startswith("memory:"):
        return Tenancy(KeyAuthenticator(server.master_key, None, None))
    hasher = KeyHasher(hashing_secret(env.get("CLAWDBOT_KEY_SECRET") or server.key_secret, server.master_key))
    store = SqlKeyStore(Database(database_url(config, env)))
    authn = KeyAuthenticator(server.master_key, store, hasher, ttl=server.key_cache_ttl)
    return Tenancy(authn, store, hasher)
