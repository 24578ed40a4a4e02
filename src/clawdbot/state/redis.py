"""The Redis client of a process (`redis_url`, env CLAWDBOT_REDIS_URL), shared by everything that
keeps state for several replicas: rate limits, budgets, key invalidation, circuit breakers, the
shared caches. One pipelined connection (state/redis_lean.py, the commands in
state/redis_client.py); hiredis is imported only when a URL is configured, so a process without
Redis never loads it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from clawdbot.config.schema import Config

if TYPE_CHECKING:
    from clawdbot.state.redis_client import RedisClient

TIMEOUT_S = 5.0  # connecting, and each command's reply
KEY_PREFIX = "clawdbot:"


def redis_url(config: Config, env: Mapping[str, str]) -> str | None:
    return env.get("CLAWDBOT_REDIS_URL") or config.redis_url or None


def redis_prefix(config: Config, env: Mapping[str, str]) -> str:
    """Of every key and channel (env CLAWDBOT_REDIS_PREFIX, else `redis_prefix`): the replicas of one
    deployment share it; two deployments on one Redis keep theirs apart."""
    return env.get("CLAWDBOT_REDIS_PREFIX") or config.redis_prefix


def redis_client(url: str, client_name: str | None = None) -> RedisClient:
    """Raises ValueError for a URL it cannot use (the message never repeats it), or when hiredis
    is not installed."""
    try:
        from clawdbot.state.redis_client import RedisClient
    except ModuleNotFoundError:
        raise ValueError("redis_url needs the redis extra: pip install 'clawdbot[redis]'") from None
    return RedisClient.from_url(url, timeout=TIMEOUT_S, client_name=client_name)


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
