"""/metrics beyond the request counts, on a real gateway process driven by the `openai` package:
time per output token, the response model, fallbacks, the gateway's own refusals, plugin actions
and cache lookups, spend, per-key series (metrics.key_labels), queue gauges, and the loopback-only
`--metrics-port` listener."""

from __future__ import annotations

import http.client
import json
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.e2e.harness import GatewayProcess, closed_port, free_port, serve_config
from tests.e2e.test_metrics import Samples, samples, scrape_text, scrape_until, total
from tests.upstreams.openai_server import OpenAIUpstream

MASTER = "sk-metrics-master-0123456789"
Msgs = list[openai.types.chat.ChatCompletionMessageParam]


def config(upstream: OpenAIUpstream) -> str:
    return f"""server:
  master_key: ${{TEST_MASTER_KEY}}
metrics:
  key_labels: true
services:
  - name: oa
    type: openai
    endpoint: {upstream.base_url}
  - name: down
    type: openai
    endpoint: http://127.0.0.1:{closed_port()}/v1
models:
  chat-oa:
    deployments:
      - {{service: oa, model: mock-a, cost: {{input: 1000, output: 2000}}}}
  flaky:
    deployments: [{{service: down, model: gone}}]
    fallbacks: [chat-oa]
  cached: [oa/mock-c]
  plain: [oa/mock-p]
plugins:
  - name: cache
    models: [cached]
  - name: pii
    models: [chat-oa]
"""


def admin(gw: GatewayProcess, path: str, body: dict[str, object]) -> dict[str, object]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"})
        r = conn.getresponse()
        out: dict[str, object] = json.loads(r.read())
        assert r.status == 201, out
        return out
    finally:
        conn.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, openai_upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    with serve_config(tmp_path_factory.mktemp("metrics-outcomes"), config(openai_upstream), MASTER) as gw:
        yield gw


def client(gw: GatewayProcess, key: str = MASTER) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=20)


def send_everything(gw: GatewayProcess) -> dict[str, str]:
    """Traffic that touches every family: a stream, a masked prompt, a fallback, a cache miss and
    hit, a rate-limit refusal; metered through a key of a team. Returns the ids made."""
    team = admin(gw, "/admin/api/teams", {"name": f"research-{secrets.token_hex(4)}"})
    key = admin(gw, "/admin/api/keys", {"name": "metered", "team_id": team["id"]})
    tight = admin(gw, "/admin/api/keys", {"name": "tight", "rpm": 1})
    c = client(gw, str(key["key"]))
    hi: Msgs = [{"role": "user", "content": "hello there friend"}]
    # streamed: 3 output words, so a time per output token
    for _chunk in c.chat.completions.create(model="chat-oa", messages=hi, stream=True,
                                            stream_options={"include_usage": True}):
        pass
    # the pii plugin masks the address on chat-oa
    c.chat.completions.create(model="chat-oa", messages=[{"role": "user", "content": "mail ada@example.com now"}])
    # the only deployment of `flaky` refuses connections: the gateway moves on to chat-oa
    c.chat.completions.create(model="flaky", messages=hi)
    # the cache plugin: a miss, then a hit
    for _ in range(2):
        c.chat.completions.create(model="cached", messages=[{"role": "user", "content": "cache me"}])
    t = client(gw, str(tight["key"]))
    t.chat.completions.create(model="chat-oa", messages=hi)
    with pytest.raises(openai.RateLimitError):
        t.chat.completions.create(model="chat-oa", messages=hi)
    return {"team": str(team["id"]), "key": str(key["id"]), "tight": str(tight["id"])}


def test_outcomes_are_counted(gw: GatewayProcess) -> None:
    before = samples(scrape_text(gw))
    ids = send_everything(gw)

    def done(s: Samples) -> bool:
        return total(s, "clawdbot_rate_limited_total") > total(before, "clawdbot_rate_limited_total")

    after = scrape_until(gw, done)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    chat = {"gen_ai_request_model": "chat-oa", "gen_ai_response_model": "mock-a", "error_type": ""}
    assert delta("gen_ai_server_time_per_output_token_seconds_count", **chat) == 1
    assert delta("gen_ai_server_time_per_output_token_seconds_sum", **chat) > 0
    assert delta("gen_ai_server_request_duration_seconds_count", gen_ai_request_model="flaky",
                 gen_ai_response_model="mock-a", service="oa") == 1
    assert delta("clawdbot_fallbacks_total", model="flaky", fallback_model="chat-oa") == 1
    assert delta("clawdbot_retries_total", model="flaky") == 1
    assert delta("clawdbot_rate_limited_total", reason="rate_limit_exceeded", model="chat-oa") == 1
    assert delta("clawdbot_plugin_actions_total", plugin="pii", action="masked") == 1
    assert delta("clawdbot_plugin_actions_total", plugin="cache", action="miss") == 1
    assert delta("clawdbot_plugin_actions_total", plugin="cache", action="hit") == 1
    assert delta("clawdbot_cache_lookups_total", plugin="cache", result="hit") == 1
    assert delta("clawdbot_cache_lookups_total", plugin="cache", result="miss") == 1
    # chat-oa costs $1000/$2000 per million tokens: every metered answer on it is charged
    spent = delta("clawdbot_spend_usd_total", model="chat-oa", service="oa")
    assert spent > 0
    team_id, key_id = ids["team"], ids["key"]
    assert delta("clawdbot_key_requests_total", key=key_id, team=team_id, status="200") == 5
    assert delta("clawdbot_key_requests_total", key=ids["tight"], team="none", status="429") == 1
    assert delta("clawdbot_key_tokens_total", key=key_id, team=team_id, gen_ai_token_type="output") > 0
    assert delta("clawdbot_key_spend_usd_total", key=key_id, team=team_id) > 0
    # the key's spend is part of the model's (the tight key's one answer is the rest)
    assert delta("clawdbot_key_spend_usd_total", key=key_id, team=team_id) < spent
    assert total(after, "clawdbot_http_requests_in_flight") == 1  # the scrape that read it
    assert total(after, "clawdbot_service_queue_depth", service="oa") == 0
    assert total(after, "clawdbot_service_pool_waiting", service="oa") == 0
    assert total(after, "clawdbot_service_pool_connections", service="oa") >= 1
    # no raw strings: the user's text and the upstream's address are never labels
    text = scrape_text(gw)
    assert "ada@example.com" not in text and "hello there" not in text


def raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_metrics_port_serves_only_metrics_on_loopback(tmp_path: Path, openai_upstream: OpenAIUpstream) -> None:
    port = free_port()
    gw = serve_config(tmp_path, config(openai_upstream), MASTER)
    gw.args += ["--metrics-port", str(port)]
    with gw:
        client(gw).chat.completions.create(model="chat-oa", messages=[{"role": "user", "content": "hi"}])
        # no key needed on the metrics port ...
        out = raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert b"text/plain; version=0.0.4" in head
        found = samples(body.decode())
        assert total(found, "clawdbot_requests_total", model="chat-oa", status="200") == 1
        out = raw(port, b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n")
        assert b"application/openmetrics-text" in out and out.endswith(b"# EOF\n")
        # ... while the main port still wants the master key
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        conn.request("GET", "/metrics")
        assert conn.getresponse().status == 401
        conn.close()
        assert raw(port, b"GET /v1/models HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404 ")
        assert raw(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").startswith(b"HTTP/1.1 405 ")
        assert raw(port, b"nonsense\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        assert raw(port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431 ")
        # loopback only: the listener is bound to 127.0.0.1, not every address
        with open("/proc/net/tcp") as f:
            listening = [line.split() for line in f.readlines()[1:]]
        local = {fields[1] for fields in listening if fields[3] == "0A"}  # state LISTEN
        assert f"0100007F:{port:04X}" in local and f"00000000:{port:04X}" not in local
        # the gateway still answers on its own port
        assert "metrics on http://127.0.0.1:" in gw.log()


def test_metrics_port_refused_when_it_collides(tmp_path: Path, openai_upstream: OpenAIUpstream) -> None:
    gw = serve_config(tmp_path, config(openai_upstream), MASTER)
    gw.args += ["--metrics-port", str(gw.port)]
    code, out = gw.run_to_exit()
    assert code == 2 and "metrics port cannot be the gateway's own port" in out, out


def test_the_response_model_is_what_the_answer_names(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    """gen_ai.response.model: the model the upstream's answer names (OpenAI names a dated snapshot),
    on the pass-through path (`plain`: no plugin) and the decoded one (`chat-oa`: the pii plugin
    restores the answer), whole and streamed."""
    before = samples(scrape_text(gw))
    openai_upstream.answer_model = "mock-2026-01-01"
    try:
        for model in ("plain", "chat-oa"):
            client(gw).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
            with client(gw).chat.completions.create(model=model, stream=True,
                                                    messages=[{"role": "user", "content": "hi"}]) as stream:
                assert all(c.model == "mock-2026-01-01" for c in stream)
    finally:
        openai_upstream.answer_model = None

    def done(s: Samples) -> bool:
        return total(s, "gen_ai_server_request_duration_seconds_count", gen_ai_response_model="mock-2026-01-01") >= 4

    after = scrape_until(gw, done)
    for model, upstream in (("plain", "mock-p"), ("chat-oa", "mock-a")):
        named = {"gen_ai_request_model": model, "gen_ai_response_model": "mock-2026-01-01"}
        assert total(after, "gen_ai_server_request_duration_seconds_count", **named) - \
            total(before, "gen_ai_server_request_duration_seconds_count", **named) == 2
        asked = {"gen_ai_request_model": model, "gen_ai_response_model": upstream}
        assert total(after, "gen_ai_server_request_duration_seconds_count", **asked) == \
            total(before, "gen_ai_server_request_duration_seconds_count", **asked)
