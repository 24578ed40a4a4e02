"""Anthropic's Messages dialect inbound (POST /v1/messages), driven by the official `anthropic`
package against a real gateway process in front of the OpenAI test upstream and the Ollama one:
whole and streamed answers, the system prompt, tool use streamed as input_json_delta and a tool
result sent back, the key in x-api-key, errors in Anthropic's shape, metering of a virtual key,
and count_tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.e2e.harness import GatewayProcess, http_call, serve_config
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream

MASTER = "sk-test-anthropic-master-0123456789"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, openai_upstream: OpenAIUpstream,
       ollama_upstream: OllamaTestServer) -> Iterator[GatewayProcess]:
    with serve_config(tmp_path_factory.mktemp("anthropic"), f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
  log_format: json
services:
  - name: oa
    type: openai
    endpoint: {openai_upstream.url}/v1
  - name: ol
    type: ollama
    endpoint: {ollama_upstream.url}
costs:
  claude-ish: {{input: 1.0, output: 2.0}}
models:
  claude-ish: [oa/mock-a]
  via-ollama: [ol/llama3.2:latest]
""", MASTER) as g:
        yield g


def post(gw: GatewayProcess, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
    status, data = http_call(gw, "POST", path, body, {"content-type": "application/json", **headers})
    return status, json.loads(data)


def client(gw: GatewayProcess, key: str = MASTER) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=20)


def test_a_whole_answer_with_a_system_prompt(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    msg = client(gw).messages.create(model="claude-ish", max_tokens=64, system="Be brief.",
                                     messages=[{"role": "user", "content": "Say hello"}])
    assert msg.type == "message" and msg.role == "assistant" and msg.model == "claude-ish"
    assert [b.type for b in msg.content] == ["text"] and msg.content[0].text == "echo: Say hello"  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn" and msg.usage.output_tokens > 0 and msg.usage.input_tokens > 0
    sent = openai_upstream.last_request
    assert sent is not None and sent.body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent.body["max_tokens"] == 64


@pytest.mark.parametrize("model", ["claude-ish", "via-ollama"])
def test_a_streamed_answer_event_by_event(gw: GatewayProcess, model: str) -> None:
    with client(gw).messages.stream(model=model, max_tokens=64,
                                    messages=[{"role": "user", "content": "count one two three"}]) as s:
        events = [e.type for e in s]
        final = s.get_final_message()
    text = "".join(b.text for b in final.content if b.type == "text")
    assert text == "echo: count one two three"
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "content_block_start" in events and "content_block_stop" in events and "message_delta" in events
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


def test_max_tokens_is_the_stop_reason_when_the_answer_is_cut(gw: GatewayProcess) -> None:
    msg = client(gw).messages.create(model="claude-ish", max_tokens=2,
                                     messages=[{"role": "user", "content": "a b c d e f g"}])
    assert msg.stop_reason == "max_tokens"


def test_tool_use_streams_its_input_and_a_result_goes_back(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    tools: Any = [{"name": "lookup", "description": "Look a thing up",
                   "input_schema": {"type": "object", "properties": {"x": {"type": "integer"}}}}]
    with client(gw).messages.stream(model="claude-ish", max_tokens=64, tools=tools,
                                    messages=[{"role": "user", "content": "call:lookup please"}]) as s:
        deltas = [e.delta.partial_json for e in s if e.type == "content_block_delta"  # type: ignore[union-attr]
                  and e.delta.type == "input_json_delta"]  # type: ignore[union-attr]
        final = s.get_final_message()
    assert len(deltas) > 1 and "".join(deltas) == '{"x": 1}'  # split fragments, as the model streamed them
    [use] = [b for b in final.content if b.type == "tool_use"]
    assert use.name == "lookup" and use.input == {"x": 1} and final.stop_reason == "tool_use"
    msg = client(gw).messages.create(model="claude-ish", max_tokens=64, tools=tools, messages=[
        {"role": "user", "content": "call:lookup please"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": use.id, "name": "lookup", "input": {"x": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "forty-two"}]},
    ])
    assert msg.content[0].text == "tool result: forty-two"  # type: ignore[union-attr]
    sent = openai_upstream.last_request
    assert sent is not None
    assert sent.body["messages"][1]["tool_calls"][0]["function"] == {"name": "lookup", "arguments": '{"x":1}'}
    assert sent.body["messages"][2] == {"role": "tool", "content": "forty-two", "tool_call_id": use.id}


def test_errors_come_in_anthropics_shape(gw: GatewayProcess) -> None:
    with pytest.raises(anthropic.AuthenticationError) as auth:
        client(gw, "sk-wrong").messages.create(model="claude-ish", max_tokens=8,
                                               messages=[{"role": "user", "content": "hi"}])
    assert auth.value.body["type"] == "error"  # type: ignore[index]
    assert auth.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    status, body = post(gw, "/v1/messages", {"x-api-key": MASTER},
                        {"model": "claude-ish", "messages": [{"role": "user", "content": "hi"}]})
    assert status == 400 and body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]
    with pytest.raises(anthropic.NotFoundError) as missing:
        client(gw).messages.create(model="nobody-serves-this", max_tokens=8,
                                   messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    # the OpenAI dialect's errors are unchanged
    status, body = post(gw, "/v1/chat/completions", {"authorization": "Bearer sk-wrong-too"},
                        {"model": "claude-ish", "messages": [{"role": "user", "content": "hi"}]})
    assert status == 401 and body["error"]["code"] == "invalid_api_key"


def test_a_virtual_key_in_x_api_key_is_metered(gw: GatewayProcess) -> None:
    status, made = post(gw, "/admin/api/keys", {"authorization": f"Bearer {MASTER}"},
                        {"name": "anthropic-client", "budget_usd": 5})
    assert status in (200, 201), made
    key = made["key"]
    msg = client(gw, key).messages.create(model="claude-ish", max_tokens=16,
                                          messages=[{"role": "user", "content": "hi there"}])
    assert msg.stop_reason == "end_turn"
    line = gw.wait_for_log('"path":"/v1/messages"')
    assert line


def test_count_tokens(gw: GatewayProcess) -> None:
    n = client(gw).messages.count_tokens(model="claude-ish", system="sys",
                                         messages=[{"role": "user", "content": "hello " * 40}])
    assert n.input_tokens > 40
    with pytest.raises(anthropic.NotFoundError):
        client(gw).messages.count_tokens(model="nobody-serves-this", messages=[{"role": "user", "content": "x"}])


def test_bad_input_is_refused_in_anthropics_shape(gw: GatewayProcess) -> None:
    nested: Any = "x"
    for _ in range(100):  # deeper than server.max_json_depth (64)
        nested = [nested]
    for body in ({"model": "claude-ish", "max_tokens": 8, "messages": nested},
                 {"model": "claude-ish", "max_tokens": "eight", "messages": [{"role": "user", "content": "x"}]},
                 {"model": "claude-ish", "max_tokens": 8, "messages": [{"role": "robot", "content": "x"}]},
                 {"model": "claude-ish", "max_tokens": 8,
                  "messages": [{"role": "user", "content": [{"type": "video"}]}]}):
        status, err = post(gw, "/v1/messages", {"x-api-key": MASTER}, body)
        assert status == 400 and err["type"] == "error" and err["error"]["type"] == "invalid_request_error", err
    big = {"model": "claude-ish", "max_tokens": 8, "messages": [{"role": "user", "content": "x" * (17 * 1024 * 1024)}]}
    status, data = http_call(gw, "POST", "/v1/messages", big, {"x-api-key": MASTER, "content-type": "application/json"})
    assert status == 413 and json.loads(data)["error"]["type"] == "request_too_large"
