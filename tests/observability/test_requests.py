"""The per-request counters behind /metrics: bucket edges, bounded labels, the scrape-time view."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from clawdbot.core.context import RequestContext
from clawdbot.observability.exposition import exposition
from clawdbot.observability.metrics import Metrics
from clawdbot.observability.requests import (
    DURATION_BUCKETS,
    MAX_PLUGIN_ACTIONS,
    MAX_RESPONSE_MODELS,
    OTHER,
    Histogram,
    RequestMetrics,
)
from clawdbot.tenancy.principal import Principal


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
        ("chat", "oa", "chat-oa", 200, "none"): 1, ("chat", "oa", "other", 200, "none"): 2,
        ("chat", "none", "chat-oa", 0, "none"): 1}
    assert len(next(iter(rm.series.values())).duration.counts) == len(DURATION_BUCKETS) + 1


def test_a_reload_keeps_the_counts_and_relabels_what_comes_next() -> None:
    rm = RequestMetrics()
    rm.configure(["a"], {"oa": "openai"})
    rm.record(RequestContext("r", model="b", service="oa"), "/v1/embeddings", 200)
    rm.configure(["b"], {"ol": "ollama"})
    rm.record(RequestContext("r", model="b", service="oa"), "/v1/embeddings", 200)
    assert set(rm.series) == {("embeddings", "oa", "other", 200, "none"), ("embeddings", "oa", "b", 200, "none")}
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


def test_response_models_are_capped() -> None:
    rm = RequestMetrics()
    rm.configure(["m"], {"oa": "openai"})
    for i in range(MAX_RESPONSE_MODELS + 5):
        rm.record(RequestContext("r", model="m", service="oa", upstream_model=f"up-{i}"), "/v1/chat/completions", 200)
    names = {k[4] for k in rm.series}
    assert len(names) == MAX_RESPONSE_MODELS + 1 and OTHER in names
    assert rm.series[("chat", "oa", "m", 200, OTHER)].requests == 5


def test_plugin_actions_are_words_and_capped() -> None:
    rm = RequestMetrics()
    notes = ["pii: masked 3 items", "cache: hit", "content_filter: blocked input by rule set x",
             "weird: Ünïcode <script>", "x: " + "a" * 40]
    rm.record(RequestContext("r", model="m", plugin_notes=notes), "/v1/chat/completions", 200)
    assert rm.plugin_actions == {("pii", "masked"): 1, ("cache", "hit"): 1, ("content_filter", "blocked"): 1,
                                 ("weird", OTHER): 1, ("x", OTHER): 1}
    flood = [f"p{i}: act" for i in range(3 * MAX_PLUGIN_ACTIONS)]
    rm.record(RequestContext("r", model="m", plugin_notes=flood), "/v1/chat/completions", 200)
    assert len(rm.plugin_actions) <= 2 * MAX_PLUGIN_ACTIONS + 1


def test_tpot_fallbacks_refusals_and_keys() -> None:
    rm = RequestMetrics()
    rm.configure(["m", "fb"], {"oa": "openai"}, key_labels=True, max_keys=2)
    ctx = RequestContext("r", model="m", service="oa", stream=True, completion_tokens=5, fallback="fb",
                         cost_micros=1500, prompt_tokens=2,
                         identity=Principal(kind="key", key_id="k_1", team_id="t_1"))
    ctx.first_token_at = ctx.started
    rm.record(ctx, "/v1/chat/completions", 200)
    s = rm.series[("chat", "oa", "m", 200, "none")]
    assert s.tpot.counts[-1] + sum(s.tpot.counts[:-1]) == 1 and s.spend_micros == 1500
    assert rm.fallbacks == {("m", "fb"): 1}
    rm.record(RequestContext("r", model="m", error_code="budget_exceeded"), "/v1/chat/completions", 429)
    rm.record(RequestContext("r", model="m", error_code="model_not_found"), "/v1/chat/completions", 404)
    assert rm.refused == {("budget_exceeded", "m"): 1}
    for i in range(4):
        who = Principal(kind="key", key_id=f"k_{i}")
        rm.record(RequestContext("r", model="m", identity=who), "/v1/embeddings", 200)
    assert rm.keys is not None
    assert rm.keys[("k_1", "t_1", 200)].spend_micros == 1500
    assert rm.keys[("none", "none", 429)].requests == 1  # the refusals above: no key
    assert rm.keys[(OTHER, OTHER, 200)].requests == 4  # past the cap of 2
    rm.configure(["m"], {}, key_labels=False)
    assert rm.keys is None
