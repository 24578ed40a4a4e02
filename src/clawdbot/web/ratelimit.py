"""Sliding-window rate limits, in process (per user, per session, per login address).

Each key keeps the times of its last `limit` hits (a ring, so a key costs at most `limit` floats);
keys idle for a whole window are swept, so memory follows the number of recently active keys."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence

WINDOW_S = 60.0
SWEEP_EVERY = 1024  # hits between sweeps of idle keys


class SlidingWindow:
    def __init__(self, limit: int, window_s: float = WINDOW_S) -> None:
        self.limit = limit  # 0: unlimited
        self.window_s = window_s
        self._hits: dict[str, deque[float]] = {}
        self._since_sweep = 0

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until `key` may be hit again; 0 when it may now."""
        if self.limit <= 0:
            return 0.0
        hits = self._hits.get(key)
        if hits is None or len(hits) < self.limit:
            return 0.0
        return max(0.0, hits[0] + self.window_s - now)

    def hit(self, key: str, now: float) -> None:
        if self.limit <= 0:
            return
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = deque(maxlen=self.limit)
        hits.append(now)
        self._since_sweep += 1
        if self._since_sweep >= SWEEP_EVERY:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        self._since_sweep = 0
        cutoff = now - self.window_s
        for key in [k for k, h in self._hits.items() if not h or h[-1] <= cutoff]:
            del self._hits[key]

    def __len__(self) -> int:
        return len(self._hits)


def take(limits: Sequence[tuple[SlidingWindow, str]], now: float | None = None) -> int:
    """Hit every (window, key) if all allow it, else none: the whole seconds to wait (0: taken).
    All-or-nothing, so a refused message does not use up the budget of the other window."""
    t = time.monotonic() if now is None else now
    wait = max((w.retry_after(k, t) for w, k in limits), default=0.0)
    if wait > 0:
        return max(1, math.ceil(wait))
    for w, k in limits:
        w.hit(k, t)
    return 0
