"""Circuit breakers, one per service.

closed -> open: `failures` consecutive failures, or an error rate of at least `error_rate` over the
last `window` seconds (once the window holds `min_requests`). open -> half-open: after `cooldown`
seconds; then at most `trials` requests at a time are let through. half-open -> closed after `trials`
successes; -> open again on a failure. A 429's Retry-After puts a service aside until then without
counting as a failure (`throttle`).

The router talks to breakers through the `Breaker` / `BreakerStore` Protocols. The in-memory store
below is the whole truth for one process; the shared one (routing/breaker_redis.py, with
`redis_url`) keeps the same synchronous hot-path methods on a local copy and publishes transitions
in the background, so no request ever waits on the network to ask whether a service is open.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from clawdbot.config.schema import Breaker as BreakerSettings

log = logging.getLogger("clawdbot.breaker")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
# allow() answers: falsy denies. A TRIAL permit must be handed back to record().
DENY, PASS, TRIAL = 0, 1, 2
BUCKETS = 10  # the error-rate window is kept as this many counters, not a list of requests
HISTORY = 20  # transitions kept per breaker for /debug
# A wait for a Retry-After or a cooldown may end up to a millisecond early (uvloop's timers have
# millisecond resolution); a service whose time is up within this much counts as free again, so
# the request that waited is not refused for having woken early.
SLACK = 0.005


class Breaker(Protocol):
    name: str
    state: str

    def allow(self, now: float) -> int:
        """DENY, PASS, or TRIAL (half-open: one of the trial requests)."""
        ...

    def record(self, permit: int, ok: bool | None, now: float) -> None:
        """The outcome of a request allow() let through: True, False (a failure), None (neither:
        cancelled, or a 429)."""
        ...

    def throttle(self, until: float) -> None:
        """Keep the service aside until `until` (monotonic seconds): the upstream's Retry-After."""
        ...

    def retry_after(self, now: float) -> float:
        """Seconds until allow() may let a request through again (0 if it would now)."""
        ...

    def snapshot(self, now: float) -> dict[str, Any]: ...


class BreakerStore(Protocol):
    def get(self, service: str, settings: BreakerSettings) -> Breaker:
        """The service's breaker, created on first use; its settings updated to `settings`."""
        ...

    def retain(self, services: Iterable[str]) -> None:
        """Forget the breakers of services that are no longer configured."""
        ...

    def snapshot(self) -> dict[str, dict[str, Any]]: ...


Listener = Callable[[str, str], None]  # (service, new state)


class MemoryBreaker:
    __slots__ = ("_bucket", "_fails", "_i", "_len", "_reqs", "_until", "consecutive", "history", "listener", "name",
                 "open_until", "opened", "settings", "state", "throttled_until", "trial_ok", "trials")

    def __init__(self, name: str, settings: BreakerSettings, listener: Listener | None = None) -> None:
        self.name = name
        self.listener = listener
        self.state = CLOSED
        self.consecutive = 0
        self.open_until = 0.0
        self.throttled_until = 0.0
        self.trials = 0  # trial requests in flight (half-open)
        self.trial_ok = 0
        self.opened = 0  # times it opened
        self.history: deque[tuple[float, str, str]] = deque(maxlen=HISTORY)  # (wall time, state, reason)
        self._reqs = [0] * BUCKETS
        self._fails = [0] * BUCKETS
        self._bucket = 0
        self._i = 0
        self._until = 0.0  # when the current bucket ends
        self._len = 1.0
        self.settings = settings
        self.configure(settings)

    def configure(self, settings: BreakerSettings) -> None:
        self.settings = settings
        self._len = settings.window / BUCKETS
        self._until = 0.0

    def allow(self, now: float) -> int:
        soon = now + SLACK
        if soon < self.throttled_until:
            return DENY
        state = self.state
        if state is CLOSED:
            return PASS
        if state is OPEN:
            if soon < self.open_until:
                return DENY
            self._move(HALF_OPEN, f"cooldown of {self.settings.cooldown:g}s over", now)
        if self.trials >= self.settings.trials:
            return DENY
        self.trials += 1
        return TRIAL

    def record(self, permit: int, ok: bool | None, now: float) -> None:
        if permit == TRIAL:
            self.trials -= 1
            if self.state is not HALF_OPEN or ok is None:
                return
            if ok:
                self.trial_ok += 1
                if self.trial_ok >= self.settings.trials:
                    self._move(CLOSED, f"{self.trial_ok} trial request(s) succeeded", now)
            else:
                self._open(now, "a trial request failed")
            return
        if ok is None:
            return
        self._count(ok, now)
        if ok:
            self.consecutive = 0
            return
        self.consecutive += 1
        if self.state is not CLOSED or not self.settings.enabled:
            return
        s = self.settings
        if self.consecutive >= s.failures:
            self._open(now, f"{self.consecutive} consecutive failures")
            return
        total = sum(self._reqs)
        if total >= s.min_requests:
            rate = sum(self._fails) / total
            if rate >= s.error_rate:
                self._open(now, f"error rate {rate:.0%} over {total} requests in {s.window:g}s")

    def throttle(self, until: float) -> None:
        if until > self.throttled_until and self.settings.enabled:
            self.throttled_until = until

    def retry_after(self, now: float) -> float:
        wait = self.throttled_until - now
        if self.state is OPEN:
            wait = max(wait, self.open_until - now)
        return wait if wait > SLACK else 0.0  # agrees with allow()

    def error_rate(self, now: float) -> float | None:
        self._count(None, now)
        total = sum(self._reqs)
        return sum(self._fails) / total if total else None

    def _count(self, ok: bool | None, now: float) -> None:
        if now >= self._until:  # a new bucket: clear the ones skipped since the last request
            idx = int(now / self._len)
            last = self._bucket
            for k in range(last + 1, last + 1 + min(idx - last, BUCKETS)):
                self._reqs[k % BUCKETS] = self._fails[k % BUCKETS] = 0
            self._bucket, self._i, self._until = idx, idx % BUCKETS, (idx + 1) * self._len
        if ok is not None:
            self._reqs[self._i] += 1
            if not ok:
                self._fails[self._i] += 1

    def _open(self, now: float, reason: str) -> None:
        self.open_until = now + self.settings.cooldown
        self.opened += 1
        self._move(OPEN, reason, now)

    def _move(self, state: str, reason: str, now: float) -> None:
        before, self.state = self.state, state
        self.trial_ok = 0
        if state is CLOSED:
            self.consecutive = 0
            self._reqs = [0] * BUCKETS
            self._fails = [0] * BUCKETS
        self.history.append((time.time(), state, reason))
        level = logging.WARNING if state is OPEN else logging.INFO
        extra = f"; trial requests in {self.settings.cooldown:g}s" if state is OPEN else ""
        log.log(level, "circuit of service %s: %s -> %s (%s%s)", self.name, before, state, reason, extra)
        if self.listener is not None:
            self.listener(self.name, state)

    def snapshot(self, now: float) -> dict[str, Any]:
        rate = self.error_rate(now)
        return {
            "state": self.state,
            "consecutive_failures": self.consecutive,
            "error_rate": round(rate, 3) if rate is not None else None,
            "opened": self.opened,
            "retry_in_s": _ceil(self.retry_after(now)),
            "throttled": now + SLACK < self.throttled_until,
            "transitions": [{"at": round(t, 3), "to": s, "reason": r} for t, s, r in self.history],
        }


class MemoryBreakers:
    """Every breaker of this process. Lives as long as the gateway, across config reloads."""

    def __init__(self, listener: Listener | None = None) -> None:
        self.listener = listener
        self._breakers: dict[str, MemoryBreaker] = {}

    def get(self, service: str, settings: BreakerSettings) -> MemoryBreaker:
        b = self._breakers.get(service)
        if b is None:
            b = self._breakers[service] = MemoryBreaker(service, settings, self.listener)
        elif b.settings != settings:
            b.configure(settings)
        return b

    def retain(self, services: Iterable[str]) -> None:
        keep = set(services)
        for name in [n for n in self._breakers if n not in keep]:
            del self._breakers[name]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        return {name: b.snapshot(now) for name, b in self._breakers.items()}


def _ceil(seconds: float) -> int:
    return math.ceil(seconds) if seconds > 0 else 0
