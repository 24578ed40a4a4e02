"""Retry policy: a budget so retries cannot multiply the load on a failing upstream, exponential
backoff with full jitter, and reading an upstream's Retry-After."""

from __future__ import annotations

import email.utils
import random
import time

BURST = 10.0  # retries the per-request deposits may save up beyond one second's worth


class RetryBudget:
    """Each request deposits `ratio` retries, each retry withdraws one: on average at most `ratio`
    retries per request (0.2: at most 1.2x the load), however many deployments a model lists. On
    top, `min_per_second` retries are always allowed, so a quiet gateway can still retry."""

    __slots__ = ("_floor", "_floor_at", "cap", "min_per_second", "ratio", "tokens")

    def __init__(self, ratio: float, min_per_second: float) -> None:
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.cap = BURST + ratio * 100.0
        self.tokens = 0.0
        self._floor = min_per_second
        self._floor_at = time.monotonic()

    def configure(self, ratio: float, min_per_second: float) -> None:
        self.ratio, self.min_per_second = ratio, min_per_second
        self.cap = BURST + ratio * 100.0
        self.tokens = min(self.tokens, self.cap)

    def deposit(self) -> None:
        t = self.tokens + self.ratio
        self.tokens = t if t < self.cap else self.cap

    def spend(self, now: float) -> bool:
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        elapsed = now - self._floor_at
        floor = self._floor
        if elapsed > 0:
            floor = min(self.min_per_second, floor + elapsed * self.min_per_second)
            self._floor_at = now
        if floor >= 1.0:
            self._floor = floor - 1.0
            return True
        self._floor = floor
        return False


def backoff(n: int, base: float, cap: float) -> float:
    """Seconds to wait before the n-th retry (n >= 1) of the same service: full jitter."""
    return random.uniform(0.0, min(cap, base * (2.0 ** (n - 1))))


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
