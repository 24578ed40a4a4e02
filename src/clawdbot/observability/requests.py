"""Per-request counters for /metrics (observability/exposition.py), written once per request by
`Pipeline.end`: plain int increments into fixed bucket arrays, one series per bounded label set.
Nothing here calls prometheus_client; the collector reads these at scrape time.

Labels are bounded by construction: the operation comes from a fixed path table, the model from
the configured names (anything else is `other`), the service from config, the status is an HTTP
code. A request id or a raw user string never becomes a key."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from time import perf_counter

from clawdbot.core.context import RequestContext

# The OpenTelemetry GenAI semantic conventions' advisory bucket boundaries.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)

OTHER = "other"  # a model that is not configured, or none named
NONE = "none"  # no service answered (refused before routing, unknown model, ...)

# gen_ai.operation.name per path; a path not here (health, admin, /metrics) is not counted.
OPERATIONS: dict[str, str] = {
    "/v1/chat/completions": "chat", "/chat/completions": "chat", "/v1/messages": "chat",
    "/v1/responses": "chat", "/responses": "chat", "/api/chat": "chat", "chat.send": "chat",
    "/v1/completions": "text_completion", "/completions": "text_completion", "/api/generate": "text_completion",
    "/v1/embeddings": "embeddings", "/embeddings": "embeddings", "/api/embed": "embeddings",
    "/api/embeddings": "embeddings",
}


class Histogram:
    """Non-cumulative counts per bucket (the last one is +Inf) and the sum; cumulated at scrape."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # `le`: value <= bound
        self.sum += value

    def merge(self, other: Histogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.sum += other.sum


class Series:
    """Everything counted for one (operation, service, model, status)."""

    __slots__ = ("duration", "input_tokens", "output_tokens", "requests", "retries", "ttft")

    def __init__(self) -> None:
        self.requests = 0
        self.retries = 0  # upstream attempts after the first
        self.duration = Histogram(DURATION_BUCKETS)
        self.ttft = Histogram(TTFT_BUCKETS)
        self.input_tokens = Histogram(TOKEN_BUCKETS)
        self.output_tokens = Histogram(TOKEN_BUCKETS)


Key = tuple[str, str, str, int]  # operation, service, model, status


class RequestMetrics:
    def __init__(self) -> None:
        self.series: dict[Key, Series] = {}
        self.models: frozenset[str] = frozenset()
        self.providers: dict[str, str] = {}  # service name -> its type (gen_ai.provider.name)

    def configure(self, models: Iterable[str], providers: dict[str, str]) -> None:
        """The configured names (at start and on every reload). Series of names no longer
        configured stay: a counter must not go backwards, and the set stays bounded by the configs
        this process has served."""
        self.models = frozenset(models)
        self.providers = {**self.providers, **providers}

    def record(self, ctx: RequestContext, path: str, status: int) -> None:
        op = OPERATIONS.get(path)
        if op is None:
            return
        model = ctx.model
        if model is None or model not in self.models:
            model = OTHER
        if not 100 <= status <= 599:
            status = 0
        key = (op, ctx.service or NONE, model, status)
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = Series()
        s.requests += 1
        s.duration.observe(perf_counter() - ctx.started)
        if ctx.stream and ctx.first_token_at is not None:
            s.ttft.observe(ctx.first_token_at - ctx.started)
        if ctx.prompt_tokens is not None:
            s.input_tokens.observe(ctx.prompt_tokens)
        if ctx.completion_tokens is not None:
            s.output_tokens.observe(ctx.completion_tokens)
        if len(ctx.attempts) > 1:
            s.retries += len(ctx.attempts) - 1
