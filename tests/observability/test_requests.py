"""The per-request counters behind /metrics: bucket edges, bounded labels, the scrape-time view."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from clawdbot.core.context import RequestContext
from clawdbot.observability.exposition import exposition
from clawdbot.observability.metrics import Metrics
from clawdbot.observability.requests import DURATION_BUCKETS, Histogram, RequestMetrics


def test_a_value_on_a_bound_falls_in_that_bucket() -> None:
    h = Histogram((1.0, 2.0))
    for v in (0.5, 1.0, 1.5, 2.0, 9.0):
        h.observe(v)
    assert h.counts == [2, 2, 1]  # le=1: 0.5, 1.0; le=2: 1.5, 2.0; +Inf: 9.0
    assert h.sum == 14.0


def test_labels_come_only_from_config() -> None:
    rm = RequestMetrics()
    rm.configure(["chat-oa"], {"oa": "openai"})
    for model in ("chat-oa", "someone's free text", None):
        rm.record(RequestContext("r1", model=model, service="oa"), "/v1/chat/completions", 200)
    rm.record(RequestContext("r2", model="chat-oa"), "/v1/chat/completions", 999)
    rm.record(RequestContext("r3", model="chat-oa"), "/healthz", 200)  # not an operation: not counted
    assert {k: s.requests for k, s in rm.series.items()} == {
        ("chat", "oa", "chat-oa", 200): 1, ("chat", "oa", "other", 200): 2, ("chat", "none", "chat-oa", 0): 1}
    assert len(next(iter(rm.series.values())).duration.counts) == len(DURATION_BUCKETS) + 1


def test_a_reload_keeps_the_counts_and_relabels_what_comes_next() -> None:
    rm = RequestMetrics()
    rm.configure(["a"], {"oa": "openai"})
    rm.record(RequestContext("r", model="b", service="oa"), "/v1/embeddings", 200)
    rm.configure(["b"], {"ol": "ollama"})
    rm.record(RequestContext("r", model="b", service="oa"), "/v1/embeddings", 200)
    assert set(rm.series) == {("embeddings", "oa", "other", 200), ("embeddings", "oa", "b", 200)}
    assert rm.providers == {"oa": "openai", "ol": "ollama"}


def test_success_statuses_share_their_gen_ai_series() -> None:
    m = Metrics()
    m.requests.configure(["m"], {"oa": "openai"})
    for status in (200, 201, 502):
        m.requests.record(RequestContext("r", model="m", service="oa", prompt_tokens=3), "/api/chat", status)
    body, ctype = exposition(m, "")
    assert ctype.startswith("text/plain")
    found = {(s.name, s.labels.get("error_type"), s.labels.get("status")): s.value
             for f in text_string_to_metric_families(body.decode()) for s in f.samples}
    assert found[("gen_ai_server_request_duration_seconds_count", "", None)] == 2
    assert found[("gen_ai_server_request_duration_seconds_count", "502", None)] == 1
    assert found[("clawdbot_requests_total", None, "201")] == 1
