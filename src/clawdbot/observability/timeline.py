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

from clawdbot.config.schema import Config
from clawdbot.core.errors import NotFound
from clawdbot.observability.requests import DURATION_BUCKETS, TTFT_BUCKETS, RequestMetrics, Series

BUCKET_S = 10.0
BUCKETS = 360  # an hour


# The overview's filters: (the model asked, the service that answered), either None for any; the
# whole traffic is not a Scope (None where one is taken)
Scope = tuple[str | None, str | None]


def _zeros(n: int) -> list[int]:
    return [0] * n


@dataclass
class Part:
    """Running totals (or, in a bucket, what changed) of some of the traffic."""

    requests: int = 0
    errors: int = 0  # 5xx and requests that ended without a status
    output_tokens: int = 0
    duration: list[int] = field(default_factory=lambda: _zeros(len(DURATION_BUCKETS) + 1))
    ttft: list[int] = field(default_factory=lambda: _zeros(len(TTFT_BUCKETS) + 1))

    def add(self, s: Series, status: int) -> None:
        self.requests += s.requests
        if status == 0 or status >= 500:
            self.errors += s.requests
        self.output_tokens += int(s.output_tokens.sum)
        self.duration = [a + b for a, b in zip(self.duration, s.duration.counts, strict=True)]
        self.ttft = [a + b for a, b in zip(self.ttft, s.ttft.counts, strict=True)]

    def minus(self, prev: Part | None) -> Part:
        if prev is None:
            return Part(self.requests, self.errors, self.output_tokens, list(self.duration), list(self.ttft))
        return Part(self.requests - prev.requests, self.errors - prev.errors, self.output_tokens - prev.output_tokens,
                    [a - b for a, b in zip(self.duration, prev.duration, strict=True)],
                    [a - b for a, b in zip(self.ttft, prev.ttft, strict=True)])


@dataclass
class Totals:
    all: Part = field(default_factory=Part)
    scopes: dict[Scope, Part] = field(default_factory=dict)  # per model asked, per service, per both
    by_route: dict[tuple[str, str], int] = field(default_factory=dict)  # (model, service) -> requests


def totals(m: RequestMetrics) -> Totals:
    """The counters' totals, whole and per scope. Models are the configured names (others count
    as one, observability/requests.py), services the configured ones: the scopes stay bounded."""
    t = Totals()
    for (_, service, model, status, _), s in m.series.items():
        t.all.add(s, status)
        for scope in ((model, None), (None, service), (model, service)):
            part = t.scopes.get(scope)
            if part is None:
                part = t.scopes[scope] = Part()
            part.add(s, status)
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
    all: Part
    scopes: dict[Scope, Part]  # only the scopes that had traffic in the bucket


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
        # what the plugins did (metrics' plugin_actions, the counter /metrics exports as
        # clawdbot_plugin_actions) at each tick: the panel's per-plugin summary of the last hour.
        # A tick with no new action keeps the same dict, so an idle hour costs one dict.
        self.plugin_marks: deque[dict[tuple[str, str], int]] = deque(
            [dict(metrics.plugin_actions)], maxlen=buckets + 1)
        self._task: asyncio.Task[None] | None = None

    def _since_last(self, now: float, cur: Totals | None = None) -> tuple[Bucket, Totals]:
        cur = cur or totals(self.metrics)
        prev = self.last
        scopes = {}
        for scope, part in cur.scopes.items():
            was = prev.scopes.get(scope)
            if was is None or part.requests != was.requests:
                scopes[scope] = part.minus(was)
        return Bucket(now, cur.all.minus(prev.all), scopes), cur

    def tick(self) -> None:
        now = self.clock()
        bucket, cur = self._since_last(now)
        self.buckets.append(bucket)
        self.marks.append((now, dict(cur.by_route)))
        self.last = cur
        actions = self.metrics.plugin_actions
        last = self.plugin_marks[-1]
        self.plugin_marks.append(last if actions == last else dict(actions))

    def plugin_actions(self) -> tuple[dict[str, dict[str, int]], float]:
        """{plugin id: {action: times}} over the kept window (the last hour, up to now), and the
        window's length in seconds (shorter when the process is younger than the window)."""
        oldest = self.plugin_marks[0]
        out: dict[str, dict[str, int]] = {}
        for (plugin, action), n in self.metrics.plugin_actions.items():
            d = n - oldest.get((plugin, action), 0)
            if d > 0:
                out.setdefault(plugin, {})[action] = d
        return out, max(0.0, self.clock() - self.marks[0][0])

    def view(self, scope: Scope | None = None) -> tuple[dict[str, list[Any]], dict[tuple[str, str], int]]:
        """The series (series()) of all traffic or of one scope, and the requests per (model,
        service) over the kept window (the last hour), both up to now, from one reading of the
        counters."""
        cur = totals(self.metrics)
        oldest = self.marks[0][1]
        routes = {k: n - oldest.get(k, 0) for k, n in cur.by_route.items() if n - oldest.get(k, 0)}
        return self.series(cur, scope), routes

    def series(self, cur: Totals | None = None, scope: Scope | None = None) -> dict[str, list[Any]]:
        """One entry per bucket, oldest first; the last is the bucket in progress (since the last
        tick), so a request shows at once."""
        b = [*self.buckets, self._since_last(self.clock(), cur)[0]]
        empty = Part()
        parts = [x.all if scope is None else x.scopes.get(scope, empty) for x in b]
        return series_of([x.t for x in b], parts)

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


def series_of(times: list[float], parts: list[Part]) -> dict[str, list[Any]]:
    """The overview's columns (web/panel.py) for buckets ending at `times`: counts, latency and
    time-to-first-token quantiles in ms, output tokens."""
    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000.0, 2)

    return {
        "t": [round(t, 3) for t in times],
        "requests": [p.requests for p in parts],
        "errors": [p.errors for p in parts],
        "p50_ms": [ms(quantile(DURATION_BUCKETS, p.duration, 0.5)) for p in parts],
        "p99_ms": [ms(quantile(DURATION_BUCKETS, p.duration, 0.99)) for p in parts],
        "ttft_p50_ms": [ms(quantile(TTFT_BUCKETS, p.ttft, 0.5)) for p in parts],
        "output_tokens": [p.output_tokens for p in parts],
    }


def scope_of(config: Config, model: str | None, service: str | None) -> Scope | None:
    """The overview's scope: a model of the config, one of its services, or the model's traffic
    that service answered; None: all traffic. NotFound for a name the config does not have."""
    if model is not None and model not in config.models:
        raise NotFound(f"No model {model!r} in the config.", param="model", code="model_not_found")
    if service is not None and service not in {s.name for s in config.services}:
        raise NotFound(f"No service {service!r} in the config.", param="service", code="service_not_found")
    return None if model is None and service is None else (model, service)


def scope_view(scope: Scope | None) -> dict[str, str | None] | None:
    """A scope as the overview's JSON says it."""
    return None if scope is None else {"model": scope[0], "service": scope[1]}
