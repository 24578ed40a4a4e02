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

GEN_AI = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "error_type", "service"]
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


def error_type(status: int) -> str:
    """OpenTelemetry's error.type: the status code of a failed request, empty on success."""
    if status == 0:
        return "_OTHER"
    return str(status) if status >= 400 else ""


def _buckets(h: Histogram) -> list[tuple[str, float]]:
    bounds = [*(repr(float(b)) for b in h.bounds), "+Inf"]
    return list(zip(bounds, accumulate(h.counts), strict=True))


class GatewayCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._requests()
        yield from self._services()
        yield from self._process()

    def _requests(self) -> Iterator[Metric]:
        rm = self.metrics.requests
        duration = HistogramMetricFamily("gen_ai_server_request_duration_seconds",
                                         "Time from the request's arrival to its last byte.", labels=GEN_AI,
                                         unit="seconds")
        ttft = HistogramMetricFamily("gen_ai_server_time_to_first_token_seconds",
                                     "Streams: time from the request's arrival to the first output token.",
                                     labels=GEN_AI, unit="seconds")
        tokens = HistogramMetricFamily("gen_ai_client_token_usage", "Tokens per request, by gen_ai_token_type.",
                                       labels=[*GEN_AI, "gen_ai_token_type"])
        requests = CounterMetricFamily("clawdbot_requests", "Requests by operation, service, model and HTTP status.",
                                       labels=["operation", "service", "model", "status"])
        retries = CounterMetricFamily("clawdbot_retries", "Upstream attempts after a request's first (failover).",
                                      labels=["operation", "model"])
        # Series that differ only in a success status (200, 201) share their gen_ai labels: merged.
        merged: dict[tuple[str, ...], Series] = {}
        retried: dict[tuple[str, str], int] = {}
        for (op, service, model, status), s in list(rm.series.items()):
            requests.add_metric([op, service, model, str(status) if status else "other"], s.requests)
            if s.retries:
                retried[(op, model)] = retried.get((op, model), 0) + s.retries
            provider = rm.providers.get(service, NONE)
            labels = (op, provider, model, error_type(status), service)
            into = merged.get(labels)
            if into is None:
                into = merged[labels] = Series()
            into.requests += s.requests
            for mine, theirs in ((into.duration, s.duration), (into.ttft, s.ttft),
                                 (into.input_tokens, s.input_tokens), (into.output_tokens, s.output_tokens)):
                mine.merge(theirs)
        for key, s in merged.items():
            values = list(key)
            duration.add_metric(values, _buckets(s.duration), s.duration.sum)
            if any(s.ttft.counts):
                ttft.add_metric(values, _buckets(s.ttft), s.ttft.sum)
            for kind, h in (("input", s.input_tokens), ("output", s.output_tokens)):
                if any(h.counts):
                    tokens.add_metric([*values, kind], _buckets(h), h.sum)
        for (op, model), n in retried.items():
            retries.add_metric([op, model], n)
        yield from (duration, ttft, tokens, requests, retries)

    def _services(self) -> Iterator[Metric]:
        m = self.metrics
        in_flight = GaugeMetricFamily("clawdbot_service_in_flight", "Upstream calls running, per service.",
                                      labels=["service"])
        answered = CounterMetricFamily("clawdbot_service_requests", "Answering upstream calls closed, per service.",
                                       labels=["service"])
        failed = CounterMetricFamily("clawdbot_service_errors", "Answering upstream calls that failed, per service.",
                                     labels=["service"])
        for name, s in list(m.services.items()):
            in_flight.add_metric([name], s.in_flight)
            answered.add_metric([name], s.requests)
            failed.add_metric([name], s.errors)
        state = GaugeMetricFamily("clawdbot_circuit_breaker_state",
                                  "Circuit breaker per service: 0 closed, 1 half-open, 2 open.", labels=["service"])
        opened = CounterMetricFamily("clawdbot_circuit_breaker_opened", "Times the service's circuit opened.",
                                     labels=["service"])
        breakers: dict[str, dict[str, Any]] = m.breakers() if m.breakers is not None else {}
        for name, b in breakers.items():
            state.add_metric([name], BREAKER_STATES.get(b.get("state", ""), 0))
            opened.add_metric([name], b.get("opened", 0))
        yield from (in_flight, answered, failed, state, opened)

    def _process(self) -> Iterator[Metric]:
        m = self.metrics
        lag = m.loop_lag
        yield GaugeMetricFamily("clawdbot_event_loop_lag_seconds",
                                "The event loop's latest lag (a timer's lateness, sampled every 0.5 s).",
                                value=(lag.last() or 0.0) / 1000.0)
        yield GaugeMetricFamily("clawdbot_event_loop_lag_max_seconds", "The largest lag of the last 64 samples.",
                                value=(lag.max() or 0.0) / 1000.0)
        yield GaugeMetricFamily("clawdbot_websocket_connections", "Chat page WebSocket connections open.",
                                value=m.ws_connections)
        yield GaugeMetricFamily("clawdbot_chat_runs_in_flight", "Chat page runs (answers) in progress.",
                                value=m.chats_in_flight)


def exposition(metrics: Metrics, accept: str) -> tuple[bytes, str]:
    """The scrape's body and its Content-Type, in the format `accept` asks for."""
    registry = CollectorRegistry()
    registry.register(GatewayCollector(metrics))
    ProcessCollector(registry=registry)  # process_* (CPU, RSS, open files) from /proc, at scrape time
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type
