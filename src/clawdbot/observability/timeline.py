"""The last hour of traffic in 10-second buckets, kept in the process for the control panel's
overview (web/panel.py). Every tick reads the running totals the request path already keeps for
/metrics (observability/requests.py) and stores what changed since the last tick, so the request
path pays nothing for it. Quantiles come from the histograms' bucket counts (interpolated within a
bucket), as Prometheus' histogram_quantile does."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clawdbot.observability.requests import DURATION_BUCKETS, TTFT_BUCKETS, RequestMetrics

BUCKET_S = 10.0
BUCKETS = 360  # an hour


@dataclass
class Totals:
    requests: int = 0
    errors: int = 0  # 5xx and requests that ended without a status
    output_tokens: int = 0
    duration: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    ttft: list[int] = field(default_factory=lambda: [0] * (len(TTFT_BUCKETS) + 1))
    by_route: dict[tuple[str, str], int] = field(default_factory=dict)  # (model, service) -> requests


def totals(m: RequestMetrics) -> Totals:
    t = Totals()
    for (_, service, model, status, _), s in m.series.items():
        t.requests += s.requests
        if status == 0 or status >= 500:
            t.errors += s.requests
        t.output_tokens += int(s.output_tokens.sum)
        t.duration = [a + b for a, b in zip(t.duration, s.duration.counts, strict=True)]
        t.ttft = [a + b for a, b in zip(t.ttft, s.ttft.counts, strict=True)]
        k = (model, service)
        t.by_route[k] = t.by_route.get(k, 0) + s.requests
    return t


def quantile(bounds: tuple[float, ...], counts: list[int], q: float) -> float | None:
    """The q-quantile (0..1) of bucketed counts (the last bucket is +Inf), None without any."""
    total = sum(counts)
    if total == 0:
        return None
    rank, seen = q * total, 0
    for i, n in enumerate(counts):
        if seen + n >= rank and n:
            if i == len(bounds):  # +Inf: the largest finite bound is all that can be said
                return bounds[-1]
            lower = bounds[i - 1] if i else 0.0
            return lower + (bounds[i] - lower) * (rank - seen) / n
        seen += n
    return bounds[-1]


@dataclass
class Bucket:
    t: float
    requests: int
    errors: int
    output_tokens: int
    duration: list[int]
    ttft: list[int]


class Timeline:
    def __init__(self, metrics: RequestMetrics, bucket_s: float = BUCKET_S, buckets: int = BUCKETS,
                 clock: Callable[[], float] = time.time) -> None:
        self.metrics = metrics
        self.bucket_s = bucket_s
        self.clock = clock
        self.buckets: deque[Bucket] = deque(maxlen=buckets)
        self.marks: deque[tuple[float, dict[tuple[str, str], int]]] = deque(maxlen=buckets + 1)
        self.last = totals(metrics)
        self.marks.append((clock(), dict(self.last.by_route)))
        self._task: asyncio.Task[None] | None = None

    def _since_last(self, now: float, cur: Totals | None = None) -> tuple[Bucket, Totals]:
        cur = cur or totals(self.metrics)
        prev = self.last
        return Bucket(
            now, cur.requests - prev.requests, cur.errors - prev.errors, cur.output_tokens - prev.output_tokens,
            [a - b for a, b in zip(cur.duration, prev.duration, strict=True)],
            [a - b for a, b in zip(cur.ttft, prev.ttft, strict=True)]), cur

    def tick(self) -> None:
        now = self.clock()
        bucket, cur = self._since_last(now)
        self.buckets.append(bucket)
        self.marks.append((now, dict(cur.by_route)))
        self.last = cur

    def view(self) -> tuple[dict[str, list[Any]], dict[tuple[str, str], int]]:
        """The series (series()) and the requests per (model, service) over the kept window (the
        last hour), both up to now, from one reading of the counters."""
        cur = totals(self.metrics)
        oldest = self.marks[0][1]
        routes = {k: n - oldest.get(k, 0) for k, n in cur.by_route.items() if n - oldest.get(k, 0)}
        return self.series(cur), routes

    def series(self, cur: Totals | None = None) -> dict[str, list[Any]]:
        """One entry per bucket, oldest first; the last is the bucket in progress (since the last
        tick), so a request shows at once."""
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000.0, 2)

        b = [*self.buckets, self._since_last(self.clock(), cur)[0]]
        return {
            "t": [round(x.t, 3) for x in b],
            "requests": [x.requests for x in b],
            "errors": [x.errors for x in b],
            "p50_ms": [ms(quantile(DURATION_BUCKETS, x.duration, 0.5)) for x in b],
            "p99_ms": [ms(quantile(DURATION_BUCKETS, x.duration, 0.99)) for x in b],
            "ttft_p50_ms": [ms(quantile(TTFT_BUCKETS, x.ttft, 0.5)) for x in b],
            "output_tokens": [x.output_tokens for x in b],
        }

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="panel-timeline")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.bucket_s)
            self.tick()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
