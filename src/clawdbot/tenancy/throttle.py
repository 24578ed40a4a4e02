"""Failed key checks, throttled per client address: the chat page's login, `Authorization: Bearer`
on /v1, the admin API and the chat socket share one budget.

A token bucket per address: `burst` failures at once, then one more every `60 / per_minute`
seconds. While an address has no token left its attempts are refused with 429 *before* the key is
looked at (no oracle for a guesser), but only until the next token: a correct key is delayed by at
most one refill interval, never locked out for a minute by someone else's failures. A correct
key costs no token. Successful requests never touch the table, so the hot path pays one dict
lookup on an empty or small dict."""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from clawdbot.core.networks import Network

BURST = 10
PER_MINUTE = 10.0
MAX_ADDRESSES = 10_000  # tracked at once; beyond, the entry idle longest goes first
MAX_FORWARDED_HOPS = 16  # X-Forwarded-For entries looked at, from the right


class AuthThrottle:
    __slots__ = ("_clock", "buckets", "burst", "interval", "trusted")

    def __init__(self, burst: int = BURST, per_minute: float = PER_MINUTE,
                 clock: Callable[[], float] = time.monotonic, trusted: tuple[Network, ...] = ()) -> None:
        self.burst = burst
        self.trusted = trusted  # server.trusted_proxies: whose X-Forwarded-For names the client
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

    def address(self, scope: Mapping[str, Any]) -> str:
        return client_address(scope, self.trusted)


def client_address(scope: Mapping[str, Any], trusted: tuple[Network, ...] = ()) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy (`server.trusted_proxies`)
    that sent X-Forwarded-For; then the rightmost address in it that is not itself a trusted proxy
    (a client can write anything to the left of what its proxies append). Without trusted proxies
    the header is never read."""
    client = scope.get("client")
    peer = str(client[0]) if isinstance(client, list | tuple) and client else "?"
    if not trusted or not _trusted(peer, trusted):
        return peer
    forwarded = [v for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"]
    if not forwarded:
        return peer
    hops = b",".join(forwarded).decode("latin-1").split(",")[-MAX_FORWARDED_HOPS:]
    for hop in reversed(hops):
        addr = hop.strip()
        if not addr:
            continue
        if not _trusted(addr, trusted):
            return addr if _is_ip(addr) else peer  # a hop that is no address: the proxy is what we know
    return hops[0].strip() or peer


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _trusted(addr: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in trusted)
