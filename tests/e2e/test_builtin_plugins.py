"""The built-in plugins through a real gateway process, with the openai package as the client and
the test upstream (it echoes what it was sent, so the test sees what the model saw): masking and
restoring (whole and streamed), never an unmasked value in the log; access refusals; content
filtering on input and on a stream; the exact cache (memory, and Redis shared by two replicas),
its cost-free hits and opt-outs; the semantic cache on an embedding model the gateway serves; and
Redis going away under the cache."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import redis

from tests.e2e.harness import GatewayProcess, closed_port, serve_config
from tests.upstreams.openai_server import FINGERPRINT, OpenAIUpstream

MASTER = "sk-test-builtins-master-0123456789"
EMAIL, PHONE = "li.wei@example.com", "13812345678"


def config(upstream: OpenAIUpstream, cache_backend: str = "memory", redis: str = "") -> str:
    return f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
  log_format: json
{redis}
services:
  - name: oa
    type: openai
    endpoint: {upstream.url}/v1
    timeouts: {{connect: 1, first_byte: 5, total: 10}}
costs:
  chat: {{input: 1.0, output: 2.0}}
  cached: {{input: 1.0, output: 2.0}}
models:
  chat: [oa/mock-a]
  cached: [oa/mock-b]
  semantic: [oa/mock-c]
  secret-model: [oa/mock-d]
  embed: [oa/text-embedding-3-small]
plugins:
  - name: access
    with:
      rules:
        - {{deny_models: ["secret-*"], max_context_tokens: 2000}}
  - name: pii
  - name: content_filter
    with:
      input: {{keywords: ["forbidden topic"]}}
      output: {{keywords: ["w3"]}}
  - name: cache
    models: [cached]
    with: {{backend: {cache_backend}, scope: global}}
  - name: semantic_cache
    models: [semantic]
    with: {{embedding_model: embed, threshold: 0.999}}
"""


def start(tmp: Path, text: str) -> GatewayProcess:
    return serve_config(tmp, text, MASTER)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, openai_upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    with start(tmp_path_factory.mktemp("builtins"), config(openai_upstream)) as g:
        yield g


def client(gw: GatewayProcess, key: str = MASTER) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=20)


def access(gw: GatewayProcess, rid: str) -> dict[str, Any]:
    gw.wait_for_log(f'"request_id":"{rid}","event":"access"')
    lines = [json.loads(x) for x in gw.log().splitlines() if f'"request_id":"{rid}","event":"access"' in x]
    return lines[-1]


def ask(gw: GatewayProcess, text: str, model: str = "chat", **kw: Any) -> tuple[str, dict[str, Any], Any]:
    raw = client(gw).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], **kw)
    return raw.parse().choices[0].message.content or "", access(gw, raw.headers["x-request-id"]), raw.headers


def test_masked_upstream_restored_for_the_client(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    text, line, _ = ask(gw, f"mail {EMAIL} or call {PHONE}")
    assert openai_upstream.last_request is not None
    sent = openai_upstream.last_request.body["messages"][-1]["content"]
    assert EMAIL not in sent and PHONE not in sent and "<EMAIL_1>" in sent and "<PHONE_1>" in sent
    assert text == f"echo: mail {EMAIL} or call {PHONE}"  # the echo came back with placeholders, restored
    assert "pii: masked 2 items" in line["plugins"]
    # streamed: the placeholders arrive split over word chunks and are restored all the same
    stream = client(gw).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": f"write to {EMAIL} please"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == f"echo: write to {EMAIL} please"
    assert EMAIL not in gw.log() and PHONE not in gw.log()


def test_an_answer_no_plugin_changed_is_the_upstreams_own_bytes(gw: GatewayProcess) -> None:
    # pii (nothing to restore here) and content_filter's output rules read the answer; neither
    # changes it, so the client gets what the upstream sent: its fingerprint and token details,
    # which the gateway's own encoding of an answer does not carry.
    raw = client(gw).chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "plain words"}])
    resp = raw.parse()
    assert resp.choices[0].message.content == "echo: plain words"
    assert resp.system_fingerprint == FINGERPRINT and resp.usage is not None
    assert resp.usage.prompt_tokens_details is not None
    assert raw.http_response.content.startswith(b"{\n")  # the upstream's indentation, as sent
    # a restored answer was changed: the gateway's encoding
    resp = client(gw).chat.completions.create(model="chat", messages=[{"role": "user", "content": f"mail {EMAIL}"}])
    assert resp.choices[0].message.content == f"echo: mail {EMAIL}" and resp.system_fingerprint is None


def test_text_the_plugins_did_not_read_never_reaches_the_client(gw: GatewayProcess) -> None:
    # logprobs repeat the answer token by token, where an output keyword or a placeholder could
    # hide: the plugins read the message, so an answer with logprobs goes out in the gateway's
    # encoding, without them
    resp = client(gw).chat.completions.create(
        model="chat", logprobs=True, messages=[{"role": "user", "content": "plain words"}])
    assert resp.choices[0].message.content == "echo: plain words" and resp.choices[0].logprobs is None
    assert resp.system_fingerprint is None


def test_access_and_content_filter_refuse_in_the_clients_dialect(gw: GatewayProcess) -> None:
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client(gw).chat.completions.create(model="secret-model", messages=[{"role": "user", "content": "hi"}])
    body: Any = denied.value.body
    assert body["code"] == "access_denied" and "secret-model" in body["message"]
    with pytest.raises(openai.BadRequestError) as filtered:
        client(gw).chat.completions.create(model="chat", messages=[{"role": "user", "content": "a forbidden topic"}])
    body = filtered.value.body
    assert body["code"] == "content_filtered" and "forbidden topic" not in body["message"]


def test_a_stream_whose_output_matches_ends_with_an_error_event(gw: GatewayProcess) -> None:
    # fault:chunks=5 pads the echo with " w1 w2 ...": "w3" is an output keyword
    stream = client(gw).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "a fault:chunks=6"}], stream=True)
    got: list[str] = []
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            got.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    assert "w3" not in "".join(got) and "content_filtered" in str(err.value.body or err.value.message)


def test_exact_cache_hit_costs_nothing_and_can_be_bypassed(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    q = f"cache me {uuid.uuid4().hex}"
    first, line1, h1 = ask(gw, q, model="cached")
    assert h1["x-clawdbot-cache"] == "miss" and line1.get("cost_free") is None
    before = openai_upstream.request_count
    second, line2, h2 = ask(gw, q, model="cached")
    assert second == first and h2["x-clawdbot-cache"] == "hit"
    assert line2["cost_free"] is True and "cache: hit" in line2["plugins"]
    assert openai_upstream.request_count == before
    stream = client(gw).chat.completions.create(
        model="cached", messages=[{"role": "user", "content": q}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == first
    assert openai_upstream.request_count == before  # a streamed request replays the cached answer
    _, _, h3 = ask(gw, q, model="cached", extra_headers={"X-Clawdbot-Cache": "off"})
    assert h3["x-clawdbot-cache"] == "bypass" and openai_upstream.request_count == before + 1


def test_semantic_cache_hits_the_same_question(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    q = f"what is the capital of {uuid.uuid4().hex}"
    first, _, h1 = ask(gw, q, model="semantic")
    before = openai_upstream.request_count
    again, line, h2 = ask(gw, q, model="semantic")
    assert again == first and h2["x-clawdbot-cache"] == "semantic-hit" and line["cost_free"] is True
    # the model was not asked again, nor the embedding model: the same text is found without one
    assert openai_upstream.request_count == before
    assert h1["x-clawdbot-cache"] == "miss"


def chat_status(url: str, model: str, text: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/v1/chat/completions", json.dumps({"model": model, "messages": [
        {"role": "user", "content": text}]}), {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    out = json.loads(resp.read())
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, out


def answer_of(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(c["message"]["role"], c["message"]["content"], c["message"].get("tool_calls"), c["finish_reason"])
            for c in body["choices"]]


def test_two_replicas_share_the_redis_cache(tmp_path: Path, openai_upstream: OpenAIUpstream) -> None:
    prefix = f"cb-test-{uuid.uuid4().hex[:8]}:"
    text = config(openai_upstream, "redis", f"redis_url: redis://127.0.0.1:6379/0\nredis_prefix: '{prefix}'")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    r = redis.Redis(host="127.0.0.1", port=6379)
    with start(tmp_path / "a", text) as a, start(tmp_path / "b", text) as b:
        q = f"shared {uuid.uuid4().hex}"
        status, h1, body1 = chat_status(a.url, "cached", q)
        assert status == 200 and h1["x-clawdbot-cache"] == "miss"
        deadline = time.monotonic() + 10
        while not r.keys(f"{prefix}cache:*") and time.monotonic() < deadline:
            time.sleep(0.02)  # the entry is written in the background: polling Redis for it, bounded
        before = openai_upstream.request_count
        status, h2, body2 = chat_status(b.url, "cached", q)
        # the miss relayed the upstream's own body (its null refusal and empty annotations too)
        assert h2["x-clawdbot-cache"] == "hit" and answer_of(body2) == answer_of(body1)
        assert openai_upstream.request_count == before
    r.delete(*r.keys(f"{prefix}*"))


def test_redis_down_skips_the_cache_and_requests_still_succeed(tmp_path: Path,
                                                              openai_upstream: OpenAIUpstream) -> None:
    text = config(openai_upstream, "redis", f"redis_url: redis://127.0.0.1:{closed_port()}/0")
    # the plain chat model has no metering here (master key), so only the cache needs Redis
    with start(tmp_path, text) as g:
        for i in range(3):
            status, headers, body = chat_status(g.url, "cached", f"no redis {i}")
            assert status == 200 and body["choices"][0]["message"]["content"] == f"echo: no redis {i}"
            assert headers["x-clawdbot-cache"] == "miss"
        g.wait_for_log("Redis unavailable")
        assert g.log().count("Redis unavailable") == 1  # once per interval, not once per request


def test_other_dialects_go_through_the_same_plugins(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    """Anthropic's and Ollama's clients: masked on the way up, restored on the way back, whole and
    streamed; the content filter refuses in each dialect's own error shape."""
    import anthropic
    import ollama

    an = anthropic.Anthropic(base_url=gw.url, api_key=MASTER, max_retries=0, timeout=20)
    msg = an.messages.create(model="chat", max_tokens=64, messages=[{"role": "user", "content": f"mail {EMAIL}"}])
    assert msg.content[0].text == f"echo: mail {EMAIL}"  # type: ignore[union-attr]
    assert openai_upstream.last_request is not None
    assert EMAIL not in json.dumps(openai_upstream.last_request.body)
    with an.messages.stream(model="chat", max_tokens=64, messages=[{"role": "user", "content": f"to {EMAIL} ok"}]) as s:
        assert "".join(s.text_stream) == f"echo: to {EMAIL} ok"
    with pytest.raises(anthropic.BadRequestError) as refused:
        an.messages.create(model="chat", max_tokens=8, messages=[{"role": "user", "content": "a forbidden topic"}])
    assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    ol = ollama.Client(host=gw.url, headers={"Authorization": f"Bearer {MASTER}"}, timeout=20)
    parts = list(ol.chat(model="chat", messages=[{"role": "user", "content": f"call {PHONE}"}], stream=True))
    assert "".join(p.message.content or "" for p in parts) == f"echo: call {PHONE}"
    assert PHONE not in json.dumps(openai_upstream.last_request.body)
    with pytest.raises(ollama.ResponseError) as blocked:
        ol.chat(model="chat", messages=[{"role": "user", "content": "a forbidden topic"}], stream=False)
    assert blocked.value.status_code == 400 and "content filter" in blocked.value.error


def test_options_survive_a_request_a_plugin_changed(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    # masking re-encodes the request from canonical types: options without a canonical field
    # (reasoning_effort, logit_bias, parallel_tool_calls) still reach the upstream
    client(gw).chat.completions.create(model="chat", messages=[{"role": "user", "content": f"mail {EMAIL}"}],
                                       reasoning_effort="low", logit_bias={"50256": -100})
    sent = openai_upstream.last_request
    assert sent is not None and EMAIL not in json.dumps(sent.body)
    assert sent.body["reasoning_effort"] == "low" and sent.body["logit_bias"] == {"50256": -100}
