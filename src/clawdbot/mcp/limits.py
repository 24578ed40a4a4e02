"""Tool calls per minute per key, counted in this process (a fixed one-minute window per key).
Bounded: past max_keys the oldest window is forgotten. Several replicas count each on their own:
docs/mcp.md says so."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

WINDOW = 60.0


class CallCounter:
    def __init__(self, max_keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_keys = max_keys
        self.clock = clock
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (window start, calls in it)

    def admit(self, key: str, per_minute: int) -> int:
        """0 if the call may go ahead (and is counted), else the seconds until it may."""
        now = self.clock()
        start, n = self._windows.get(key, (now, 0))
        if now - start >= WINDOW:
            start, n = now, 0
        if n >= per_minute:
            return max(1, math.ceil(start + WINDOW - now))
        self._windows.pop(key, None)  # re-inserted last: the dict's order is the eviction order
        self._windows[key] = (start, n + 1)
        if len(self._windows) > self.max_keys:
            del self._windows[next(iter(self._windows))]
        return 0
