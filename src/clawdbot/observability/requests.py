"""Per-request counters for /metrics (observability/exposition.py), written once per request by
`Pipeline.end`: plain int increments into fixed bucket arrays, one series per bounded label set.
Nothing here calls prometheus_client; the collector reads these at scrape time.

Labels are bounded by construction: the operation comes from a fixed path table, the model from
the configured names (anything else is `other`), the service from config, the status is an HTTP
code. A request id or a raw user string never becomes a key."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable
from time import perf_counter

from clawdbot.core.context import RequestContext

# The OpenTelemetry GenAI semantic conventions' advisory bucket boundaries.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
QUEUE_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)

_ACTION = re.compile(r"[a-z][a-z-]*")
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
    """Everything counted for one (operation, service, model, status, response model)."""

    __slots__ = ("duration", "input_tokens", "output_tokens", "requests", "retries", "spend_micros", "tpot", "ttft")

    def __init__(self) -> None:
        self.requests = 0
        self.retries = 0  # upstream attempts after the first
        self.spend_micros = 0
        self.duration = Histogram(DURATION_BUCKETS)
        self.ttft = Histogram(TTFT_BUCKETS)
        self.tpot = Histogram(TPOT_BUCKETS)
        self.input_tokens = Histogram(TOKEN_BUCKETS)
        self.output_tokens = Histogram(TOKEN_BUCKETS)


class KeySeries:
    """Per key and team (metrics.key_labels): requests, tokens, spend, and waits in a service's
    queue (how many waited, for how long in all: fair share is judged per tenant)."""

    __slots__ = ("input_tokens", "output_tokens", "queue_wait_ms", "queued", "requests", "spend_micros")

    def __init__(self) -> None:
        self.requests = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.spend_micros = 0
        self.queued = 0
        self.queue_wait_ms = 0.0


Key = tuple[str, str, str, int, str]  # operation, service, model, status, response model
# the gateway's own refusals counted apart (clawdbot_rate_limited_total), by their error code
LIMIT_CODES = frozenset({"rate_limit_exceeded", "parallel_limit_exceeded", "budget_exceeded", "overloaded",
                         "too_many_failed_attempts"})
MAX_RESPONSE_MODELS = 256  # distinct upstream model names labelled; more: `other`
MAX_PLUGIN_ACTIONS = 256  # distinct (plugin, action) pairs; more: (plugin, other)


class RequestMetrics:
    def __init__(self) -> None:
        self.series: dict[Key, Series] = {}
        self.models: frozenset[str] = frozenset()
        self.providers: dict[str, str] = {}  # service name -> its type (gen_ai.provider.name)
        self.response_models: set[str] = set()
        self.fallbacks: dict[tuple[str, str], int] = {}  # (asked model, fallback model) -> requests
        self.refused: dict[tuple[str, str], int] = {}  # (error code, model) -> the gateway's own 429/503s
        self.plugin_actions: dict[tuple[str, str], int] = {}  # (plugin id, action) -> times
        self.keys: dict[tuple[str, str, int], KeySeries] | None = None  # (key, team, status): key_labels on
        self.max_keys = 1000

    def configure(self, models: Iterable[str], providers: dict[str, str], key_labels: bool = False,
                  max_keys: int = 1000) -> None:
        """The configured names (at start and on every reload). Series of names no longer
        configured stay: a counter must not go backwards, and the set stays bounded by the configs
        this process has served."""
        self.models = frozenset(models)
        self.providers = {**self.providers, **providers}
        if key_labels and self.keys is None:
            self.keys = {}
        elif not key_labels:
            self.keys = None
        self.max_keys = max_keys

    def record(self, ctx: RequestContext, path: str, status: int) -> None:
        op = OPERATIONS.get(path)
        if op is None:
            return
        model = ctx.model
        if model is None or model not in self.models:
            model = OTHER
        if not 100 <= status <= 599:
            status = 0
        response_model = ctx.response_model or ctx.upstream_model  # what the answer named, else what was asked
        if response_model is None or ctx.service is None:
            response_model = NONE
        elif response_model not in self.response_models:
            if len(self.response_models) >= MAX_RESPONSE_MODELS:
                response_model = OTHER
            else:
                self.response_models.add(response_model)
        key = (op, ctx.service or NONE, model, status, response_model)
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = Series()
        s.requests += 1
        now = perf_counter()
        s.duration.observe(now - ctx.started)
        first = ctx.first_token_at
        if ctx.stream and first is not None:
            s.ttft.observe(first - ctx.started)
            if ctx.completion_tokens is not None and ctx.completion_tokens > 1:
                s.tpot.observe((now - first) / (ctx.completion_tokens - 1))
        if ctx.prompt_tokens is not None:
            s.input_tokens.observe(ctx.prompt_tokens)
        if ctx.completion_tokens is not None:
            s.output_tokens.observe(ctx.completion_tokens)
        if ctx.cost_micros:
            s.spend_micros += ctx.cost_micros
        if len(ctx.attempts) > 1:
            s.retries += len(ctx.attempts) - 1
        if ctx.fallback is not None:
            fk = (model, ctx.fallback if ctx.fallback in self.models else OTHER)
            self.fallbacks[fk] = self.fallbacks.get(fk, 0) + 1
        if ctx.error_code is not None and ctx.error_code in LIMIT_CODES:
            rk = (ctx.error_code, model)
            self.refused[rk] = self.refused.get(rk, 0) + 1
        if ctx.plugin_notes:
            self._plugins(ctx.plugin_notes)
        if self.keys is not None:
            self._key(ctx, status)

    def _plugins(self, notes: list[str]) -> None:
        """"pii: masked 3 items" -> (pii, masked): the plugin's configured id and the note's first
        word, lower-case letters and dashes only; the pairs are capped."""
        actions = self.plugin_actions
        for note in notes:
            plugin, _, text = note.partition(": ")
            word = text.split(" ", 1)[0].rstrip(":,")
            action = word if 0 < len(word) <= 24 and _ACTION.fullmatch(word) else OTHER
            k = (plugin, action)
            if k not in actions and len(actions) >= MAX_PLUGIN_ACTIONS:
                k = (plugin if len(plugin) <= 64 else OTHER, OTHER)
                if k not in actions and len(actions) >= 2 * MAX_PLUGIN_ACTIONS:
                    k = (OTHER, OTHER)
            actions[k] = actions.get(k, 0) + 1

    def _key(self, ctx: RequestContext, status: int) -> None:
        keys = self.keys
        assert keys is not None
        who = ctx.identity
        key_id = getattr(who, "key_id", None) or NONE
        team_id = getattr(who, "team_id", None) or NONE
        k = (key_id, team_id, status)
        ks = keys.get(k)
        if ks is None:
            if len(keys) >= self.max_keys:
                k = (OTHER, OTHER, status)
                ks = keys.get(k)
            if ks is None:
                ks = keys[k] = KeySeries()
        ks.requests += 1
        ks.input_tokens += ctx.prompt_tokens or 0
        ks.output_tokens += ctx.completion_tokens or 0
        ks.spend_micros += ctx.cost_micros or 0
        if ctx.queue_wait_ms:
            ks.queued += 1
            ks.queue_wait_ms += ctx.queue_wait_ms
