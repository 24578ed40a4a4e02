"""The real Redis for tests (a helper module, not a conftest: tests/tenancy/ is shared with other work)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
import redis

from clawdbot.state.redis import redis_client
from clawdbot.state.redis_client import RedisClient

REDIS_URL = "redis://127.0.0.1:6379/0"


def async_client(client_name: str | None = None) -> RedisClient:
    """The gateway's own Redis client (state/redis.py), on the real Redis."""
    return redis_client(REDIS_URL, client_name)


@contextlib.contextmanager
def fresh_prefix() -> Iterator[str]:
    """A fresh key prefix on the real Redis, deleted afterwards. Redis down is a failure, not a skip."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as e:
        pytest.fail(
            f"Redis at {REDIS_URL} is unreachable ({e}); start it with "
            "`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no`"
        )
    prefix = f"clawdbot-test:{uuid.uuid4().hex}:"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
