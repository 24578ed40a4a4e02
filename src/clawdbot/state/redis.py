"""The Redis client of a process (`redis_url`, env CLAWDBOT_REDIS_URL), shared by everything that
keeps state for several replicas: rate limits, budgets, key invalidation, circuit breakers.

One bounded pool that makes callers wait for a connection (redis-py's default pool raises when all
are busy); `redis` is imported only when a URL is configured, so a process without Redis never
loads it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from clawdbot.config.schema import Config

if TYPE_CHECKING:
    from redis.asyncio import Redis

MAX_CONNECTIONS = 32
POOL_TIMEOUT_S = 5.0  # a caller waits this long for a free connection, then gets an error
SOCKET_TIMEOUT_S = 5.0
KEY_PREFIX = "clawdbot:"


def redis_url(config: Config, env: Mapping[str, str]) -> str | None:
    return env.get("CLAWDBOT_REDIS_URL") or config.redis_url or None


def redis_prefix(config: Config, env: Mapping[str, str]) -> str:
    """Of every key and channel (env CLAWDBOT_REDIS_PREFIX, else `redis_prefix`): the replicas of one
    deployment share it; two deployments on one Redis keep theirs apart."""
    return env.get("CLAWDBOT_REDIS_PREFIX") or config.redis_prefix


def redis_client(url: str) -> Redis:
    """Raises ValueError for a URL redis-py does not understand (the message never repeats it), or
    when redis-py is not installed."""
    try:
        from redis.asyncio import BlockingConnectionPool, Redis
    except ModuleNotFoundError:
        raise ValueError("redis_url needs the redis extra: pip install 'clawdbot[redis]'") from None

    try:
        pool = BlockingConnectionPool.from_url(
            url, max_connections=MAX_CONNECTIONS, timeout=POOL_TIMEOUT_S,
            socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S,
            health_check_interval=30,
        )
    except ValueError:
        raise ValueError("the Redis URL cannot be parsed (e.g. redis://127.0.0.1:6379/0)") from None
    return Redis(connection_pool=pool)


def redact(url: str) -> str:
    """The URL for logs, its password replaced by ***."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<unparseable Redis URL>"
    creds, at, host = rest.rpartition("@")
    if not at:
        return url
    user = creds.partition(":")[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://***@{host}"
