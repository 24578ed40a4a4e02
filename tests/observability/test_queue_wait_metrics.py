"""Waits in a service's queue on /metrics: a histogram per service (labels from config), and per key
and team only with `metrics.key_labels` (so bounded by `max_key_series`, like the other key series)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from clawdbot.core.context import RequestContext
from clawdbot.observability.exposition import exposition
from clawdbot.observability.metrics import Metrics
from clawdbot.tenancy.principal import Principal


def samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = exposition(m, "")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(body.decode()) for s in f.samples}


def test_queue_waits_per_service_and_per_key_only_with_key_labels() -> None:
    m = Metrics()
    stats = m.service("oa")
    for seconds in (0.003, 0.2, 0.2):
        stats.queue_wait.observe(seconds)
    m.requests.configure(["m"], {"oa": "openai"})
    who = Principal(kind="key", key_id="k_1", team_id="t_1")
    waited = RequestContext("r", model="m", service="oa", identity=who, queue_wait_ms=250.0)
    m.requests.record(waited, "/v1/chat/completions", 200)
    found = samples(m)
    assert found[("clawdbot_service_queue_wait_seconds_count", (("service", "oa"),))] == 3
    assert found[("clawdbot_service_queue_wait_seconds_bucket", (("le", "0.005"), ("service", "oa")))] == 1
    assert found[("clawdbot_service_queue_wait_seconds_bucket", (("le", "0.25"), ("service", "oa")))] == 3
    assert not any(name.startswith("clawdbot_key_") for name, _ in found)  # key_labels off: no key ids

    m.requests.configure(["m"], {"oa": "openai"}, key_labels=True)
    m.requests.record(waited, "/v1/chat/completions", 200)
    m.requests.record(RequestContext("r", model="m", service="oa", identity=who), "/v1/chat/completions", 200)
    found = samples(m)
    labels = (("key", "k_1"), ("team", "t_1"))
    assert found[("clawdbot_key_queued_total", labels)] == 1
    assert found[("clawdbot_key_queue_wait_seconds_total", labels)] == 0.25
    assert found[("clawdbot_key_requests_total", (("key", "k_1"), ("status", "200"), ("team", "t_1")))] == 2
