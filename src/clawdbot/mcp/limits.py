"""Tool calls per minute per key, counted by the tenancy limiter (tenancy/limits.py): the same
sliding window as /v1's rate limits, in Redis when `redis_url` is set (shared by every replica:
tenancy/limits_redis.py), else in this process. A subject is ("mcp", key, calls_per_minute, 0)."""

from __future__ import annotations

import logging
import math

from clawdbot.tenancy.limits import Limiter

log = logging.getLogger("clawdbot.mcp")
SCOPE = "mcp"  # apart from /v1's "key" subjects: a tool call is not a model request


class Unreachable(Exception):
    """The shared count cannot be read (Redis down or slow): the call is refused, never waved through."""


class CallLimits:
    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    async def admit(self, key: str, per_minute: int) -> int:
        """0 if the call may go ahead (and is counted), else the seconds until it may."""
        try:
            decision = await self.limiter.acquire([(SCOPE, key, per_minute, 0)], 1)
        except Exception as exc:  # the Redis client's ConnectionError, TimeoutError, ResponseError
            log.error("mcp calls per minute cannot be counted (%s: %s)", type(exc).__name__, str(exc)[:200])
            raise Unreachable from None
        if decision.allowed:
            return 0
        return max(1, math.ceil(decision.retry_after_s))
