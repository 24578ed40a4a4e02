"""GET /metrics: the gateway's own counters (observability/metrics.py, observability/requests.py)
read at scrape time by a prometheus_client Collector, rendered as Prometheus text or, when the
Accept header asks for it, OpenMetrics. The request path never calls prometheus_client.

Names follow the OpenTelemetry GenAI semantic conventions rendered the Prometheus way (dots to
underscores, unit suffixes); the gateway's own carry `clawdbot_`. docs/observability.md lists them."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from clawdbot.observability.metrics import Metrics
from clawdbot.observability.requests import NONE, Histogram, Series

GEN_AI = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "error_type", "service",
          "gen_ai_response_model"]
CACHE_RESULTS = {"hit": "hit", "semantic-hit": "hit", "miss": "miss"}  # a cache plugin's actions
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


def error_type(status: int) -> str:
    """OpenTelemetry's error.type: the status code of a failed request, empty on success."""
    if status == 0:
        return "_OTHER"
    return str(status) if status >= 400 else ""


def _buckets(h: Histogram) -> list[tuple[str, float]]:
    bounds = [*(repr(float(b)) for b in h.bounds), "+Inf"]
    return list(zip(bounds, accumulate(h.counts), strict=True))


def _counter(name: str, doc: str, labels: list[str], values: dict[tuple[str, str], int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, n in list(values.items()):
        family.add_metric(list(key), n)
    return family


class GatewayCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._requests()
        yield from self._services()
        yield from self._process()
        yield from self._mcp()

    def _mcp(self) -> Iterator[Metric]:
        if self.metrics.mcp_calls is None:
            return
        labels = ["server", "tool", "status"]
        calls = CounterMetricFamily("clawdbot_mcp_tool_calls", "MCP tool calls through /mcp, by server, tool and "
                                    "outcome (ok, tool_error, timeout, too_large, unavailable, rate_limited, ...).",
                                    labels=labels)
        seconds = CounterMetricFamily("clawdbot_mcp_tool_call_seconds", "Time spent in MCP tool calls.",
                                      labels=labels, unit="seconds")
        for key, (n, spent) in self.metrics.mcp_calls().items():
            calls.add_metric(list(key), n)
            seconds.add_metric(list(key), spent)
        yield from (calls, seconds)
        per_key = self.metrics.mcp_key_calls() if self.metrics.mcp_key_calls is not None else None
        if per_key is not None:  # metrics.key_labels
            by_key = CounterMetricFamily("clawdbot_key_mcp_tool_calls", "MCP tool calls per virtual key and team, "
                                         "by outcome.", labels=["key", "team", "status"])
            for labels3, n in per_key.items():
                by_key.add_metric(list(labels3), n)
            yield by_key

    def _requests(self) -> Iterator[Metric]:
        rm = self.metrics.requests
        duration = HistogramMetricFamily("gen_ai_server_request_duration_seconds",
                                         "Time from the request's arrival to its last byte.", labels=GEN_AI,
                                         unit="seconds")
        ttft = HistogramMetricFamily("gen_ai_server_time_to_first_token_seconds",
                                     "Streams: time from the request's arrival to the first output token.",
                                     labels=GEN_AI, unit="seconds")
        tpot = HistogramMetricFamily("gen_ai_server_time_per_output_token_seconds",
                                     "Streams: time per output token after the first.", labels=GEN_AI,
                                     unit="seconds")
        tokens = HistogramMetricFamily("gen_ai_client_token_usage", "Tokens per request, by gen_ai_token_type.",
                                       labels=[*GEN_AI, "gen_ai_token_type"])
        requests = CounterMetricFamily("clawdbot_requests", "Requests by operation, service, model and HTTP status.",
                                       labels=["operation", "service", "model", "status"])
        retries = CounterMetricFamily("clawdbot_retries", "Upstream attempts after a request's first (failover).",
                                      labels=["operation", "model"])
        spend = CounterMetricFamily("clawdbot_spend_usd", "Spend charged to metered requests, in US dollars.",
                                    labels=["model", "service"])
        # Series that differ only in a success status (200, 201) share their gen_ai labels: merged.
        merged: dict[tuple[str, ...], Series] = {}
        retried: dict[tuple[str, str], int] = {}
        spent: dict[tuple[str, str], int] = {}
        counted: dict[tuple[str, str, str, str], int] = {}
        for (op, service, model, status, response_model), s in list(rm.series.items()):
            ck = (op, service, model, str(status) if status else "other")
            counted[ck] = counted.get(ck, 0) + s.requests
            if s.retries:
                retried[(op, model)] = retried.get((op, model), 0) + s.retries
            if s.spend_micros:
                spent[(model, service)] = spent.get((model, service), 0) + s.spend_micros
            provider = rm.providers.get(service, NONE)
            labels = (op, provider, model, error_type(status), service, response_model)
            into = merged.get(labels)
            if into is None:
                into = merged[labels] = Series()
            into.requests += s.requests
            for mine, theirs in ((into.duration, s.duration), (into.ttft, s.ttft), (into.tpot, s.tpot),
                                 (into.input_tokens, s.input_tokens), (into.output_tokens, s.output_tokens)):
                mine.merge(theirs)
        for key, s in merged.items():
            values = list(key)
            duration.add_metric(values, _buckets(s.duration), s.duration.sum)
            for family, h in ((ttft, s.ttft), (tpot, s.tpot)):
                if any(h.counts):
                    family.add_metric(values, _buckets(h), h.sum)
            for kind, h in (("input", s.input_tokens), ("output", s.output_tokens)):
                if any(h.counts):
                    tokens.add_metric([*values, kind], _buckets(h), h.sum)
        for ck, n in counted.items():
            requests.add_metric(list(ck), n)
        for (op, model), n in retried.items():
            retries.add_metric([op, model], n)
        for (model, service), micros in spent.items():
            spend.add_metric([model, service], micros / 1_000_000)
        yield from (duration, ttft, tpot, tokens, requests, retries, spend)
        yield from self._outcomes()

    def _outcomes(self) -> Iterator[Metric]:
        """Fallbacks, the gateway's own refusals, plugin actions and cache lookups, per key."""
        rm = self.metrics.requests
        yield _counter("clawdbot_fallbacks", "Requests that moved on to a `fallbacks:` model.",
                       ["model", "fallback_model"], rm.fallbacks)
        yield _counter("clawdbot_rate_limited", "Requests the gateway refused itself (limits, budgets, a full "
                       "queue), by error code.", ["reason", "model"], rm.refused)
        actions = dict(rm.plugin_actions)
        yield _counter("clawdbot_plugin_actions", "What plugins did (pii: masked, content_filter: blocked, ...).",
                       ["plugin", "action"], actions)
        lookups: dict[tuple[str, str], int] = {}
        for (plugin, action), n in actions.items():
            result = CACHE_RESULTS.get(action)
            if result is not None:
                lookups[(plugin, result)] = lookups.get((plugin, result), 0) + n
        yield _counter("clawdbot_cache_lookups", "Cache plugin lookups by result (hit, miss).", ["plugin", "result"],
                       lookups)
        keys = rm.keys
        if keys is None:
            return
        labels = ["key", "team", "status"]
        by_key = CounterMetricFamily("clawdbot_key_requests", "Requests per virtual key and team.", labels=labels)
        key_tokens = CounterMetricFamily("clawdbot_key_tokens", "Tokens per virtual key and team.",
                                         labels=[*labels[:2], "gen_ai_token_type"])
        key_spend = CounterMetricFamily("clawdbot_key_spend_usd", "Spend per virtual key and team, US dollars.",
                                        labels=labels[:2])
        key_queued = CounterMetricFamily("clawdbot_key_queued", "Requests per virtual key and team that waited "
                                         "in a service's queue (limits.max_inflight).", labels=labels[:2])
        key_waited = CounterMetricFamily("clawdbot_key_queue_wait_seconds", "Seconds per virtual key and team "
                                         "spent in services' queues, in all.", labels=labels[:2])
        used: dict[tuple[str, str], list[float]] = {}
        for (key, team, status), ks in list(keys.items()):
            by_key.add_metric([key, team, str(status)], ks.requests)
            u = used.setdefault((key, team), [0, 0, 0, 0, 0.0])
            u[0] += ks.input_tokens
            u[1] += ks.output_tokens
            u[2] += ks.spend_micros
            u[3] += ks.queued
            u[4] += ks.queue_wait_ms
        for (key, team), (inp, out, micros, queued, wait_ms) in used.items():
            key_tokens.add_metric([key, team, "input"], inp)
            key_tokens.add_metric([key, team, "output"], out)
            key_spend.add_metric([key, team], micros / 1_000_000)
            if queued:
                key_queued.add_metric([key, team], queued)
                key_waited.add_metric([key, team], wait_ms / 1000.0)
        yield from (by_key, key_tokens, key_spend, key_queued, key_waited)

    def _services(self) -> Iterator[Metric]:
        m = self.metrics
        in_flight = GaugeMetricFamily("clawdbot_service_in_flight", "Upstream calls running, per service.",
                                      labels=["service"])
        answered = CounterMetricFamily("clawdbot_service_requests", "Answering upstream calls closed, per service.",
                                       labels=["service"])
        failed = CounterMetricFamily("clawdbot_service_errors", "Answering upstream calls that failed, per service.",
                                     labels=["service"])
        queue_wait = HistogramMetricFamily("clawdbot_service_queue_wait_seconds",
                                           "Time requests waited in the service's queue (limits.max_inflight), "
                                           "those that waited.", labels=["service"], unit="seconds")
        for name, s in list(m.services.items()):
            in_flight.add_metric([name], s.in_flight)
            answered.add_metric([name], s.requests)
            failed.add_metric([name], s.errors)
            if any(s.queue_wait.counts):
                queue_wait.add_metric([name], _buckets(s.queue_wait), s.queue_wait.sum)
        state = GaugeMetricFamily("clawdbot_circuit_breaker_state",
                                  "Circuit breaker per service: 0 closed, 1 half-open, 2 open.", labels=["service"])
        opened = CounterMetricFamily("clawdbot_circuit_breaker_opened", "Times the service's circuit opened.",
                                     labels=["service"])
        breakers: dict[str, dict[str, Any]] = m.breakers() if m.breakers is not None else {}
        for name, b in breakers.items():
            state.add_metric([name], BREAKER_STATES.get(b.get("state", ""), 0))
            opened.add_metric([name], b.get("opened", 0))
        queued = GaugeMetricFamily("clawdbot_service_queue_depth",
                                   "Requests waiting for a slot (limits.max_inflight), per service.",
                                   labels=["service"])
        pool_wait = GaugeMetricFamily("clawdbot_service_pool_waiting",
                                      "Requests waiting for an upstream connection (max_pool), per service.",
                                      labels=["service"])
        pool_open = GaugeMetricFamily("clawdbot_service_pool_connections", "Upstream connections open, per service.",
                                      labels=["service"])
        queues: dict[str, dict[str, Any]] = m.queues() if m.queues is not None else {}
        for name, q in queues.items():
            queued.add_metric([name], q.get("queued", 0))
            pool = q.get("pool")
            if pool:
                pool_wait.add_metric([name], pool.get("waiting", 0))
                pool_open.add_metric([name], pool.get("open", 0))
        yield from (in_flight, answered, failed, state, opened, queued, queue_wait, pool_wait, pool_open)

    def _process(self) -> Iterator[Metric]:
        m = self.metrics
        lag = m.loop_lag
        yield GaugeMetricFamily("clawdbot_event_loop_lag_seconds",
                                "The event loop's latest lag (a timer's lateness, sampled every 0.5 s).",
                                value=(lag.last() or 0.0) / 1000.0)
        yield GaugeMetricFamily("clawdbot_event_loop_lag_max_seconds", "The largest lag of the last 64 samples.",
                                value=(lag.max() or 0.0) / 1000.0)
        yield GaugeMetricFamily("clawdbot_http_requests_in_flight",
                                "HTTP requests being answered now (this scrape included).", value=m.http_in_flight)
        yield GaugeMetricFamily("clawdbot_websocket_connections", "Chat page WebSocket connections open.",
                                value=m.ws_connections)
        yield GaugeMetricFamily("clawdbot_chat_runs_in_flight", "Chat page runs (answers) in progress.",
                                value=m.chats_in_flight)
        if m.heap is not None:
            heap = m.heap()
            yield CounterMetricFamily("clawdbot_gc_freezes", "Garbage collections whose survivors were frozen: "
                                      "later collections do not walk them (server.gc_freeze).",
                                      value=heap["freezes"])
            yield CounterMetricFamily("clawdbot_gc_thaws", "Times the frozen objects were given back to the "
                                      "collector, so that the next full collection walks everything.",
                                      value=heap["thaws"])
            yield CounterMetricFamily("clawdbot_gc_thaw_garbage", "Objects the full collections after thaws "
                                      "freed: reference cycles the freezing had kept until then.",
                                      value=heap["garbage"])
        yield CounterMetricFamily("clawdbot_log_lines_dropped",
                                  "Log lines dropped because the log's reader (stderr, a file) fell behind "
                                  "or failed.", value=m.log_lines().get("dropped", 0))
        if m.request_log is not None:
            counts = m.request_log()
            records = CounterMetricFamily("clawdbot_request_log_records",
                                          "Request log records by outcome: written, dropped (a full queue, a batch "
                                          "the database refused), pruned (retention, row budget).",
                                          labels=["outcome"])
            for outcome in ("written", "dropped", "pruned"):
                records.add_metric([outcome], counts.get(outcome, 0))
            yield records
            yield GaugeMetricFamily("clawdbot_request_log_streams", "Live request streams open (clawdbot tail).",
                                    value=counts.get("streams_open", 0))
            yield CounterMetricFamily("clawdbot_request_log_streams_dropped",
                                      "Live request streams dropped for falling behind.",
                                      value=counts.get("streams_dropped", 0))


def exposition(metrics: Metrics, accept: str) -> tuple[bytes, str]:
    """The scrape's body and its Content-Type, in the format `accept` asks for."""
    registry = CollectorRegistry()
    registry.register(GatewayCollector(metrics))
    ProcessCollector(registry=registry)  # process_* (CPU, RSS, open files) from /proc, at scrape time
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type
