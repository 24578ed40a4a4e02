"""GET /metrics on a real gateway process: requests sent through the `openai` package show up as
exactly that many counts, labels stay bounded, the scrape is protected like the admin API, and the
text passes Debian's `promtool check metrics`."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import GatewayProcess, serve_config
from tests.upstreams.openai_server import OpenAIUpstream

MASTER = "sk-metrics-master-0123456789"
UNKNOWN = "not-configured-user-string-7f3a"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def config(upstream: OpenAIUpstream, master: bool = True) -> str:
    server = "server:\n  master_key: ${TEST_MASTER_KEY}\n" if master else ""
    return server + f"""services:
  - name: oa
    type: openai
    endpoint: {upstream.base_url}
models:
  chat-oa: [oa/mock-a]
  embed-oa: [oa/embed-a]
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, openai_upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    with serve_config(tmp_path_factory.mktemp("metrics"), config(openai_upstream), MASTER) as gw:
        yield gw


def get(gw: GatewayProcess, path: str, headers: dict[str, str]) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        return r.status, r.getheader("content-type") or "", r.read().decode()
    finally:
        conn.close()


def scrape_text(gw: GatewayProcess, key: str | None = MASTER, accept: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if accept:
        headers["Accept"] = accept
    status, _, text = get(gw, "/metrics", headers)
    assert status == 200, text
    return text


def samples(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(found: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and want <= ls)


def scrape_until(gw: GatewayProcess, done: Callable[[Samples], bool]) -> Samples:
    """The request's books close just after its last byte: poll briefly for them."""
    deadline = time.monotonic() + 5
    while True:
        found = samples(scrape_text(gw))
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=20)


def test_requests_are_counted_exactly(gw: GatewayProcess) -> None:
    before = samples(scrape_text(gw))
    c = client(gw)
    msgs: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "count these words"}]
    for _ in range(3):
        c.chat.completions.create(model="chat-oa", messages=msgs)
    for _ in range(2):
        for _chunk in c.chat.completions.create(model="chat-oa", messages=msgs, stream=True):
            pass
    c.embeddings.create(model="embed-oa", input=["one", "two"])
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model=UNKNOWN, messages=msgs)

    ok = {"operation": "chat", "service": "oa", "model": "chat-oa", "status": "200"}
    def counted(s: Samples) -> bool:
        name = "clawdbot_requests_total"
        return (total(s, name, **ok) - total(before, name, **ok) >= 5
                and total(s, name, status="404") > total(before, name, status="404"))

    after = scrape_until(gw, counted)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("clawdbot_requests_total", **ok) == 5
    assert delta("clawdbot_requests_total", operation="embeddings", model="embed-oa", status="200") == 1
    assert delta("clawdbot_requests_total", operation="chat", service="none", model="other", status="404") == 1
    gen_ai = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai", "gen_ai_request_model": "chat-oa",
              "error_type": ""}
    assert delta("gen_ai_server_request_duration_seconds_count", **gen_ai) == 5
    assert delta("gen_ai_server_request_duration_seconds_bucket", le="+Inf", **gen_ai) == 5
    assert delta("gen_ai_server_request_duration_seconds_sum", **gen_ai) > 0
    assert delta("gen_ai_server_time_to_first_token_seconds_count", **gen_ai) == 2  # the streams
    assert delta("gen_ai_client_token_usage_count", gen_ai_token_type="input", **gen_ai) == 5
    assert delta("gen_ai_client_token_usage_count", gen_ai_token_type="output", **gen_ai) == 5
    assert delta("gen_ai_client_token_usage_sum", gen_ai_token_type="output", **gen_ai) > 0
    assert delta("gen_ai_server_request_duration_seconds_count", error_type="404", gen_ai_request_model="other") == 1
    assert delta("gen_ai_server_request_duration_seconds_count", gen_ai_operation_name="embeddings") == 1
    assert total(after, "clawdbot_service_in_flight", service="oa") == 0
    assert total(after, "clawdbot_circuit_breaker_state", service="oa") == 0
    assert total(after, "process_resident_memory_bytes") > 0


def test_labels_are_bounded(gw: GatewayProcess) -> None:
    with pytest.raises(openai.NotFoundError):
        client(gw).chat.completions.create(model=UNKNOWN, messages=[{"role": "user", "content": "hi"}],
                                           extra_headers={"X-Request-ID": "req-metrics-label-probe"})
    text = scrape_text(gw)
    assert UNKNOWN not in text and "req-metrics-label-probe" not in text
    values = {v for (_, labels) in samples(text) for _, v in labels}
    assert "other" in values
    names = {k for (_, labels) in samples(text) for k, _ in labels}
    assert names <= {"gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "error_type", "service",
                     "gen_ai_token_type", "le", "operation", "model", "status", "gen_ai_response_model", "outcome"}


def test_openmetrics_when_asked(gw: GatewayProcess) -> None:
    status, ctype, text = get(gw, "/metrics", {"Authorization": f"Bearer {MASTER}",
                                               "Accept": "application/openmetrics-text; version=1.0.0"})
    assert status == 200 and ctype.startswith("application/openmetrics-text"), ctype
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(text)}
    assert families["gen_ai_server_request_duration_seconds"].type == "histogram"
    assert families["gen_ai_server_request_duration_seconds"].unit == "seconds"
    assert families["clawdbot_requests"].type == "counter"
    status, ctype, _ = get(gw, "/metrics", {"Authorization": f"Bearer {MASTER}"})
    assert ctype.startswith("text/plain; version=0.0.4"), ctype


def test_protected_like_the_admin_api(gw: GatewayProcess) -> None:
    status, _, body = get(gw, "/metrics", {})
    assert status == 401, body
    status, _, body = get(gw, "/metrics", {"Authorization": "Bearer sk-wrong-0123456789"})
    assert status == 401, body

    def create_key(**fields: object) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        conn.request("POST", "/admin/api/keys", body=json.dumps(fields),
                     headers={"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"})
        r = conn.getresponse()
        out = json.loads(r.read())
        conn.close()
        assert r.status == 201, out
        return str(out["key"])

    status, _, body = get(gw, "/metrics", {"Authorization": f"Bearer {create_key(name='plain')}"})
    assert status == 403, body
    admin = create_key(name="ops", metadata={"role": "admin"})
    assert "clawdbot_requests_total" in scrape_text(gw, key=admin)


def test_open_without_a_master_key(tmp_path: Path, openai_upstream: OpenAIUpstream) -> None:
    with serve_config(tmp_path, config(openai_upstream, master=False), MASTER) as gw:
        status, _, text = get(gw, "/metrics", {})
        assert status == 200 and "# TYPE clawdbot_requests_total counter" in text


def test_promtool_accepts_the_exposition(gw: GatewayProcess) -> None:
    assert shutil.which("promtool"), "Debian's prometheus is missing: run scripts/ensure-services.sh"
    client(gw).chat.completions.create(model="chat-oa", messages=[{"role": "user", "content": "hi"}])
    text = scrape_text(gw)
    out = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    # promtool lints the Prometheus text format only (OpenMetrics is checked by its own parser above)
    assert out.returncode == 0, (out.stdout + out.stderr).decode()
