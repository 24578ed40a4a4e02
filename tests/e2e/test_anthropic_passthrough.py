"""Anthropic -> Anthropic, bytes through: the official `anthropic` package against a gateway whose
route leads to a `type: anthropic` service (tests/upstreams/anthropic_server.py). Prompt caching
and signed thinking reach the service as the client wrote them, the prompt cache's tokens reach the
client and the spend records, streamed events arrive as the service sent them, the completion cap
cuts a stream, failures before and after the first byte come back in Anthropic's shape, and a
plugin that reads requests takes the canonical path."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import msgspec
import pytest

from tests.e2e.harness import GatewayProcess, http_call, serve_config
from tests.e2e.test_tenancy import call
from tests.upstreams.anthropic_server import CACHE_READ, CACHE_WRITE, AnthropicUpstream
from tests.upstreams.openai_server import OpenAIUpstream

MASTER = "sk-test-anthropic-pass-0123456789"
FIXTURE = Path(__file__).parent.parent / "fixtures" / "anthropic" / "stream_tool_use.sse"
PER_TOKEN = 1_000_000.0  # USD per million tokens: $1 a token

SYSTEM: Any = [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]
TOOLS: Any = [{"name": "lookup", "description": "Look it up", "cache_control": {"type": "ephemeral", "ttl": "1h"},
               "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}]
TURNS: Any = [
    {"role": "user", "content": [{"type": "text", "text": "first question", "cache_control": {"type": "ephemeral"}}]},
    {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "Let me think.", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"},
        {"type": "text", "text": "An answer."}]},
    {"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Grass is green."},
         "citations": {"enabled": True}},
        {"type": "text", "text": "second question"}]},
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream() as u:
        yield u


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: AnthropicUpstream,
       openai_upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    with serve_config(tmp_path_factory.mktemp("anthropic-pass"), f"""
server: {{master_key: "${{TEST_MASTER_KEY}}"}}
services:
{upstream.service_yaml()}  - name: oa
    type: openai
    endpoint: {openai_upstream.url}/v1
costs:
  claude: {{input: {PER_TOKEN}, output: {PER_TOKEN}}}
models:
  claude: [anth/claude-test]
  claude-test: [anth/claude-test]
  guarded: [anth/claude-test]
  mixed: [anth/claude-test, oa/mock-a]
plugins:
  - name: content_filter
    models: [guarded]
    with: {{input: {{keywords: [forbidden]}}}}
""", MASTER) as g:
        yield g


class Capture:
    """The bytes the client sent (an httpx event hook)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(self, request: Any) -> None:
        self.bodies.append(request.read())


def client(gw: GatewayProcess, key: str = MASTER, capture: Capture | None = None) -> anthropic.Anthropic:
    http = anthropic.DefaultHttpxClient(event_hooks={"request": [capture]}) if capture is not None else None
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=20, http_client=http)


def fields(body: bytes) -> dict[str, bytes]:
    """Each top-level field's value as its own bytes."""
    return {k: bytes(v) for k, v in msgspec.json.decode(body, type=dict[str, msgspec.Raw]).items()}


def test_caching_and_thinking_reach_the_service_byte_identical(gw: GatewayProcess, upstream: AnthropicUpstream) -> None:
    sent = Capture()
    extra = {"metadata": {"user_id": "u-1"}, "thinking": {"type": "enabled", "budget_tokens": 1024},
             "extra_body": {"top_k": 5}}
    r = client(gw, capture=sent).messages.create(model="claude-test", max_tokens=2000, system=SYSTEM, tools=TOOLS,
                                                 messages=TURNS, **extra)
    assert r.content[0].type == "text" and r.content[0].text == "echo: second question"
    raw, headers = upstream.raw_requests[-1]
    assert raw == sent.bodies[-1]  # the upstream model's own name: not one byte changed
    assert headers["x-api-key"] == upstream.api_key and headers["anthropic-version"]
    sent.bodies.clear()
    client(gw, capture=sent).messages.create(model="claude", max_tokens=2000, system=SYSTEM, tools=TOOLS,
                                             messages=TURNS, **extra)
    ours, theirs = fields(sent.bodies[-1]), fields(upstream.raw_requests[-1][0])
    assert theirs.pop("model") == b'"claude-test"' and ours.pop("model") == b'"claude"'  # an alias: renamed
    assert theirs == ours  # every other value as the client wrote it


def test_the_prompt_cache_tokens_reach_the_client_and_the_spend(gw: GatewayProcess) -> None:
    # the first admin call opens the database (migrations): more time than `call` gives on a busy machine
    status, out = http_call(gw, "POST", "/admin/api/keys", {"name": "anthropic-cache"},
                            {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"})
    assert status == 201, out
    made = json.loads(out)
    r = client(gw, made["key"]).messages.create(model="claude", max_tokens=50, system=SYSTEM,
                                                messages=[{"role": "user", "content": "a b"}])
    u = r.usage
    assert (u.cache_read_input_tokens, u.cache_creation_input_tokens) == (CACHE_READ, CACHE_WRITE)
    with client(gw, made["key"]).messages.stream(model="claude", max_tokens=50, system=SYSTEM,
                                                 messages=[{"role": "user", "content": "c d e"}]) as s:
        final = s.get_final_message()
    assert final.usage.cache_read_input_tokens == CACHE_READ and final.usage.output_tokens == 4
    deadline = time.monotonic() + 10
    while True:  # records reach the table in batches (metering.flush_interval)
        status, out = call(gw, "GET", f"/admin/api/spend?group_by=key&key_id={made['id']}", key=MASTER)
        assert status == 200, out
        if out["total"]["requests"] == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    total = out["total"]
    prompts = u.input_tokens + final.usage.input_tokens + 2 * (CACHE_READ + CACHE_WRITE)
    assert (total["requests"], total["prompt_tokens"]) == (2, prompts)  # the cache's tokens are prompt tokens
    assert total["completion_tokens"] == u.output_tokens + 4
    assert total["cost_usd"] == pytest.approx(prompts + u.output_tokens + 4)


def test_streamed_events_arrive_as_the_service_sent_them(gw: GatewayProcess) -> None:
    body = {"model": "claude", "max_tokens": 500, "stream": True,
            "messages": [{"role": "user", "content": "fixture:stream_tool_use"}]}
    status, got = http_call(gw, "POST", "/v1/messages", body, {"x-api-key": MASTER, "content-type": "application/json"})
    assert status == 200 and got == FIXTURE.read_bytes()
    del body["stream"]
    with client(gw).messages.stream(**body) as s:  # type: ignore[arg-type]
        final = s.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use"] and final.stop_reason == "tool_use"
    assert final.content[1].type == "tool_use" and final.content[1].input == {"location": "San Francisco, CA"}
    assert final.usage.output_tokens == 89  # the service's count, not the gateway's


def test_the_completion_cap_cuts_a_stream(gw: GatewayProcess) -> None:
    text = "ignore:max_tokens one two three four five six"  # the service answers past max_tokens
    with client(gw).messages.stream(model="claude", max_tokens=3,
                                    messages=[{"role": "user", "content": text}]) as s:
        events = [e.type for e in s]
        final = s.get_final_message()
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 3
    assert final.content[0].type == "text" and final.content[0].text == "echo: ignore:max_tokens one "
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_failures_before_and_after_the_first_byte(gw: GatewayProcess) -> None:
    with pytest.raises(anthropic.APIStatusError) as before:
        client(gw).messages.create(model="claude", max_tokens=50, messages=[{"role": "user", "content": "fault:529"}])
    assert before.value.status_code == 502 and before.value.body["type"] == "error"  # type: ignore[index]
    got: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as after, client(gw).messages.stream(
            model="claude", max_tokens=50, messages=[{"role": "user", "content": "x fault:error_event"}]) as s:
        got.extend(s.text_stream)
    assert "".join(got) == "echo: " and "overloaded" in str(after.value).lower()  # the service's own error event


def test_a_plugin_that_reads_requests_takes_the_canonical_path(gw: GatewayProcess, upstream: AnthropicUpstream) -> None:
    r = client(gw).messages.create(model="guarded", max_tokens=50, system=SYSTEM,
                                   messages=[{"role": "user", "content": "hello"}])
    assert r.content[0].type == "text" and r.content[0].text == "echo: hello"
    assert b"cache_control" not in upstream.raw_requests[-1][0]  # translated: what the plugin saw went up
    assert upstream.last_request is not None and upstream.last_request["system"] == "You are terse."
    with pytest.raises(anthropic.BadRequestError) as refused:
        client(gw).messages.create(model="guarded", max_tokens=50, messages=[{"role": "user", "content": "forbidden"}])
    assert "forbidden" not in str(upstream.last_request)
    assert refused.value.status_code == 400
    with pytest.raises(anthropic.BadRequestError) as untranslatable:  # a document the plugin could not read
        client(gw).messages.create(model="guarded", max_tokens=50, messages=TURNS[2:])
    assert "document" in str(untranslatable.value)


def test_a_failover_to_another_type_is_translated(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    r = client(gw).messages.create(model="mixed", max_tokens=50, system=SYSTEM,
                                   messages=[{"role": "user", "content": "anthropic-overloaded hi"}])
    assert r.content[0].type == "text" and r.content[0].text == "echo: anthropic-overloaded hi"  # the OpenAI service's
    with client(gw).messages.stream(model="mixed", max_tokens=50,
                                    messages=[{"role": "user", "content": "anthropic-overloaded a b"}]) as s:
        assert "".join(s.text_stream) == "echo: anthropic-overloaded a b"
    with pytest.raises(anthropic.BadRequestError) as untranslatable:  # a document: Anthropic services only
        client(gw).messages.create(model="mixed", max_tokens=50, messages=[
            {"role": "user", "content": [TURNS[2]["content"][0], {"type": "text", "text": "anthropic-overloaded"}]}])
    assert "document" in str(untranslatable.value)
