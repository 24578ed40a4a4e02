"""Failed key checks, throttled per client address: the chat page's login, `Authorization: Bearer`
on /v1, the admin API and the chat socket share one budget.

A token bucket per address: `burst` failures at once, then one more every `60 / per_minute`
seconds. While an address has no token left its attempts are refused with 429 *before* the key is
looked at (no oracle for a guesser), but only until the next token: a correct key is delayed by at
most one refill interval, never locked out for a minute by someone else's failures. A correct
key costs no token. Successful requests never touch the table, so the hot path pays one dict
lookup on an empty or small dict."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

BURST = 10
PER_MINUTE = 10.0
MAX_ADDRESSES = 10_000  # tracked at once; beyond, the entry idle longest goes first


class AuthThrottle:
    __slots__ = ("_clock", "buckets", "burst", "interval")

    def __init__(self, burst: int = BURST, per_minute: float = PER_MINUTE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.interval = 60.0 / per_minute
        self._clock = clock
        # address -> (tokens at `at`, at); dict order is the order of the last failure. Empty (the
        # usual case) means nobody failed lately: the hot path tests it before anything else.
        self.buckets: dict[str, tuple[float, float]] = {}

    def _tokens(self, addr: str, now: float) -> float | None:
        entry = self.buckets.get(addr)
        if entry is None:
            return None
        tokens, at = entry
        tokens = min(float(self.burst), tokens + (now - at) / self.interval)
        if tokens >= self.burst:
            del self.buckets[addr]  # fully refilled: forget it
            return None
        return tokens

    def wait(self, addr: str) -> int:
        """Whole seconds `addr` must wait before its next attempt (0: it may try now)."""
        if not self.buckets:
            return 0
        tokens = self._tokens(addr, self._clock())
        if tokens is None or tokens >= 1.0:
            return 0
        return max(1, math.ceil((1.0 - tokens) * self.interval))

    def failed(self, addr: str) -> None:
        now = self._clock()
        tokens = self._tokens(addr, now)
        tokens = float(self.burst) if tokens is None else tokens
        self.buckets.pop(addr, None)  # re-inserted last: dict order follows the latest failure
        if len(self.buckets) >= MAX_ADDRESSES:
            del self.buckets[next(iter(self.buckets))]
        self.buckets[addr] = (max(0.0, tokens - 1.0), now)

    def __len__(self) -> int:
        return len(self.buckets)


def client_address(scope: Mapping[str, Any]) -> str:
    """The peer address of an ASGI scope (proxy headers are not trusted: see docs/api.md)."""
    client = scope.get("client")
    if isinstance(client, list | tuple) and client:
        return str(client[0])
    return "?"
