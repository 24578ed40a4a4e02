"""The control panel's longer ranges (6 hours to 7 days): the same columns as the last hour's
timeline (observability/timeline.py), counted by the request log's store over 360 steps
(state/request_log_base.py RangeQuery), so they exist only where the request log is kept. A
result is reused for `ttl_s` (a few panels open on a gateway cost one query per range and
scope, not one per viewer and refresh)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from clawdbot.observability.requests import DURATION_BUCKETS, TTFT_BUCKETS
from clawdbot.observability.timeline import Part, Scope, series_of
from clawdbot.state.request_log_base import RangeQuery, RequestLogStore

RANGES = {"6h": 6 * 3600, "24h": 24 * 3600, "7d": 7 * 24 * 3600}  # the timeline has "1h"
STEPS = 360
MAX_CACHED = 64
LATENCY_MS = tuple(b * 1000.0 for b in DURATION_BUCKETS)
TTFT_MS = tuple(b * 1000.0 for b in TTFT_BUCKETS)


def query(seconds: int, now_ms: int, scope: Scope | None) -> RangeQuery:
    """The range ending at the current step's end: steps aligned to the epoch, so that a cached
    answer and a new one agree on where the buckets lie."""
    step_ms = seconds * 1000 // STEPS
    end = (now_ms // step_ms + 1) * step_ms
    model, service = scope if scope is not None else (None, None)
    return RangeQuery(since=end - step_ms * STEPS, step_ms=step_ms, steps=STEPS, latency_bounds_ms=LATENCY_MS,
                      ttft_bounds_ms=TTFT_MS, model=model, service=service)


class History:
    def __init__(self, store: RequestLogStore, ttl_s: float = 15.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.clock = clock
        self._cache: dict[tuple[str, Scope | None], tuple[float, dict[str, Any]]] = {}

    async def view(self, name: str, scope: Scope | None) -> dict[str, Any]:
        """{"bucket_s", "series"} of the range `name` (a key of RANGES)."""
        now = self.clock()
        hit = self._cache.get((name, scope))
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        q = query(RANGES[name], int(now * 1000), scope)
        counts = await self.store.count_range(q)
        parts = [Part() for _ in range(q.steps)]
        for step, b, requests, errors, tokens in counts.latency:
            if 0 <= step < q.steps:
                p = parts[step]
                p.requests += requests
                p.errors += errors
                p.output_tokens += tokens
                p.duration[b] += requests
        for step, b, n in counts.ttft:
            if 0 <= step < q.steps:
                parts[step].ttft[b] += n
        ends = [(q.since + q.step_ms * (i + 1)) / 1000.0 for i in range(q.steps)]
        ends[-1] = min(ends[-1], now)  # the step in progress ends now, as the timeline's last bucket
        out = {"bucket_s": q.step_ms / 1000.0, "series": series_of(ends, parts)}
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[(name, scope)] = (now, out)
        return out
