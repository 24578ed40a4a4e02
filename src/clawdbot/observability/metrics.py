"""Live numbers for /debug, /readyz and (next) the routing engine: per service in-flight, recent
latency percentiles and errors; per process the gateway's own added latency and event-loop lag.
Every window is a fixed-size ring, so memory does not grow with traffic."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from clawdbot.observability.logging import log_stats
from clawdbot.observability.requests import QUEUE_WAIT_BUCKETS, Histogram, RequestMetrics

WINDOW = 256  # samples per percentile window
EWMA_ALPHA = 0.3  # weight of the newest sample in the moving averages the latency strategy reads


class Window:
    __slots__ = ("_values",)

    def __init__(self, size: int = WINDOW) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        self._values.append(value)

    def __len__(self) -> int:
        return len(self._values)

    def percentile(self, p: float) -> float | None:
        if not self._values:
            return None
        ordered = sorted(self._values)
        return ordered[min(len(ordered) - 1, int(p / 100.0 * len(ordered)))]

    def last(self) -> float | None:
        return self._values[-1] if self._values else None

    def max(self) -> float | None:
        return max(self._values) if self._values else None

    def mean(self) -> float | None:
        return sum(self._values) / len(self._values) if self._values else None


def _r(v: float | None) -> float | None:
    return round(v, 2) if v is not None else None


class ServiceStats:
    __slots__ = ("errors", "ewma_ms", "ewma_ttft_ms", "in_flight", "last_error", "last_error_at", "latency",
                 "outcomes", "queue_wait", "requests", "ttft")

    def __init__(self) -> None:
        self.in_flight = 0
        self.requests = 0
        self.errors = 0
        self.latency = Window()
        self.ttft = Window()
        self.outcomes: deque[tuple[float, bool]] = deque(maxlen=WINDOW)  # (time, ok) for error rates
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        # moving averages (routing's latency strategy): total time, time to first token
        self.ewma_ms: float | None = None
        self.ewma_ttft_ms: float | None = None
        # seconds requests spent in the service's wait queue (limits.max_inflight), those that waited
        self.queue_wait = Histogram(QUEUE_WAIT_BUCKETS)

    def begin(self) -> float:
        self.in_flight += 1
        return time.perf_counter()

    def end(self, started: float, ttft_ms: float | None, error: str | None) -> float:
        self.in_flight -= 1
        self.requests += 1
        elapsed = (time.perf_counter() - started) * 1000.0
        self.outcomes.append((time.time(), error is None))
        if error is None:
            self.latency.add(elapsed)
            avg = self.ewma_ms
            self.ewma_ms = elapsed if avg is None else avg + EWMA_ALPHA * (elapsed - avg)
            if ttft_ms is not None:
                self.ttft.add(ttft_ms)
                avg = self.ewma_ttft_ms
                self.ewma_ttft_ms = ttft_ms if avg is None else avg + EWMA_ALPHA * (ttft_ms - avg)
        else:
            # A failure counts as slow (at least twice the average), never as fast: a service that
            # refuses connections at once must not look like the quickest one.
            avg = self.ewma_ms
            penalty = max(elapsed, 2.0 * avg) if avg is not None else elapsed
            self.ewma_ms = penalty if avg is None else avg + EWMA_ALPHA * (penalty - avg)
            self.errors += 1
            self.last_error, self.last_error_at = error[:200], time.time()
        return elapsed

    def error_rate(self, seconds: float = 60.0) -> float | None:
        since = time.time() - seconds
        recent = [ok for t, ok in self.outcomes if t >= since]
        return (recent.count(False) / len(recent)) if recent else None

    def snapshot(self) -> dict[str, Any]:
        return {
            "in_flight": self.in_flight,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate_1m": _r(self.error_rate()),
            "latency_p50_ms": _r(self.latency.percentile(50)),
            "latency_p95_ms": _r(self.latency.percentile(95)),
            "ttft_p50_ms": _r(self.ttft.percentile(50)),
            "ttft_p95_ms": _r(self.ttft.percentile(95)),
            "ewma_ms": _r(self.ewma_ms),
            "ewma_ttft_ms": _r(self.ewma_ttft_ms),
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }


class Metrics:
    def __init__(self) -> None:
        self.services: dict[str, ServiceStats] = {}
        self.requests = RequestMetrics()  # per request, by operation/service/model/status: /metrics
        self.overhead = Window()  # the gateway's own ms per request (total minus upstream time)
        self.loop_lag = Window(64)
        self.http_in_flight = 0
        self.ws_connections = 0
        self.chats_in_flight = 0
        self.started = time.time()
        self._lag_task: asyncio.Task[None] | None = None
        # Set by the gateway: per-service circuit-breaker state, merged into snapshot()["services"].
        self.breakers: Callable[[], dict[str, dict[str, Any]]] | None = None
        # Set by the gateway: per-service queues (limiter, connection pool), merged likewise.
        self.queues: Callable[[], dict[str, dict[str, Any]]] | None = None
        # Set by the pipeline: the request log's records written and dropped (observability/request_log.py)
        self.request_log: Callable[[], dict[str, int]] | None = None
        # Set by the MCP gateway: (server, tool, status) -> (calls, seconds) (mcp/calls.py)
        self.mcp_calls: Callable[[], dict[tuple[str, str, str], tuple[int, float]]] | None = None
        # Set by the MCP gateway: (key, team, status) -> calls, None while metrics.key_labels is off
        self.mcp_key_calls: Callable[[], dict[tuple[str, str, str], int] | None] | None = None
        # The log writer's counts (observability/logging.py): the process's root handler by default
        self.log_lines: Callable[[], dict[str, int]] = log_stats
        # Set by the app: the collector's policy's counts (api/heap.py): freezes, thaws, garbage
        self.heap: Callable[[], dict[str, int]] | None = None

    def service(self, name: str) -> ServiceStats:
        stats = self.services.get(name)
        if stats is None:
            stats = self.services[name] = ServiceStats()
        return stats

    def start(self, interval: float = 0.5) -> None:
        if self._lag_task is None:
            self._lag_task = asyncio.get_running_loop().create_task(self._measure_lag(interval))

    async def _measure_lag(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(interval)
            self.loop_lag.add(max(0.0, (loop.time() - before - interval) * 1000.0))

    async def stop(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_task
            self._lag_task = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "uptime_s": round(time.time() - self.started, 1),
            "http_in_flight": self.http_in_flight,
            "ws_connections": self.ws_connections,
            "chats_in_flight": self.chats_in_flight,
            "loop_lag_p50_ms": _r(self.loop_lag.percentile(50)),
            "loop_lag_max_ms": _r(self.loop_lag.max()),
            "overhead_p50_ms": _r(self.overhead.percentile(50)),
            "overhead_p95_ms": _r(self.overhead.percentile(95)),
            "services": self._services(),
        }

    def _services(self) -> dict[str, dict[str, Any]]:
        out = {name: s.snapshot() for name, s in self.services.items()}
        if self.breakers is not None:
            for name, state in self.breakers().items():
                out.setdefault(name, ServiceStats().snapshot())["breaker"] = state
        if self.queues is not None:
            for name, queues in self.queues().items():
                out.setdefault(name, ServiceStats().snapshot()).update(queues)
        return out
