"""`type: anthropic` services: requests from the openai, anthropic and ollama packages answered by a
server speaking Anthropic's Messages API (tests/upstreams/anthropic_server.py, in the shapes of
tests/fixtures/anthropic/), whole and streamed, with tool calls, the system prompt, the service's
key in x-api-key, and its failures before and after the first byte."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import ollama
import openai
import pytest

from tests.e2e.harness import GatewayProcess, serve_config
from tests.upstreams.anthropic_server import AnthropicUpstream

MASTER = "sk-test-anthropic-up-0123456789"


@pytest.fixture(scope="module")
def upstream() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream(api_key="sk-ant-secret") as u:
        yield u


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: AnthropicUpstream) -> Iterator[GatewayProcess]:
    with serve_config(tmp_path_factory.mktemp("anthropic-up"), f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
services:
  - name: anth
    type: anthropic
    endpoint: {upstream.url}
    auth: {{key: sk-ant-secret}}
    breaker: {{enabled: false}}
models:
  claude: [anth/claude-test]
  claude-guarded: [anth/claude-test]
plugins:
  - name: content_filter  # a plugin in scope: an Anthropic client's request goes the canonical way
    models: [claude-guarded]
    with: {{input: {{keywords: [forbidden]}}}}
""", MASTER) as g:
        yield g


def oai(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=20)


def test_openai_client_whole_and_streamed(gw: GatewayProcess, upstream: AnthropicUpstream) -> None:
    r = oai(gw).chat.completions.create(model="claude", max_tokens=50, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}])
    assert r.choices[0].message.content == "echo: hello there" and r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.completion_tokens == 3
    sent = upstream.last_request
    assert sent is not None and sent["system"] == "Be brief." and sent["max_tokens"] == 50
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]
    parts = list(oai(gw).chat.completions.create(model="claude", stream=True, stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "one two three"}]))
    assert "".join(p.choices[0].delta.content or "" for p in parts if p.choices) == "echo: one two three"
    assert parts[-1].usage is not None and parts[-1].usage.completion_tokens == 4
    assert upstream.last_request is not None and upstream.last_request["max_tokens"] == 4096  # the default


def test_tool_calls_both_ways(gw: GatewayProcess, upstream: AnthropicUpstream) -> None:
    tools: Any = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    parts = list(oai(gw).chat.completions.create(model="claude", stream=True, tools=tools,
                                                 messages=[{"role": "user", "content": "call:lookup"}]))
    deltas = [tc for p in parts if p.choices for tc in (p.choices[0].delta.tool_calls or [])]
    assert deltas[0].function is not None and deltas[0].function.name == "lookup"
    args = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert args == '{"x": 1}' and parts[-1].choices[0].finish_reason == "tool_calls"
    call_id = deltas[0].id
    assert call_id is not None
    r = oai(gw).chat.completions.create(model="claude", tools=tools, messages=[
        {"role": "user", "content": "call:lookup"},
        {"role": "assistant", "tool_calls": [{"id": call_id, "type": "function",
                                              "function": {"name": "lookup", "arguments": '{"x": 1}'}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "42"}])
    assert r.choices[0].message.content == "tool result: 42"
    sent = upstream.last_request
    assert sent is not None and sent["messages"][1]["content"] == [
        {"type": "tool_use", "id": call_id, "name": "lookup", "input": {"x": 1}}]
    assert sent["messages"][2]["content"][0]["type"] == "tool_result"


def test_legacy_function_calling_reaches_anthropic_with_ids(gw: GatewayProcess, upstream: AnthropicUpstream) -> None:
    """issue 14: the `function` message was a tool_result with an empty tool_use_id."""
    r = oai(gw).chat.completions.create(model="claude", messages=[  # type: ignore[misc, list-item]
        {"role": "user", "content": "call:lookup"},
        {"role": "assistant", "content": None, "function_call": {"name": "lookup", "arguments": '{"x": 1}'}},
        {"role": "function", "name": "lookup", "content": "42"}])
    assert r.choices[0].message.content == "tool result: 42"
    sent = upstream.last_request
    assert sent is not None
    use, result = sent["messages"][1]["content"][0], sent["messages"][2]["content"][0]
    assert use == {"type": "tool_use", "id": "call_1_0", "name": "lookup", "input": {"x": 1}}
    assert result["type"] == "tool_result" and result["tool_use_id"] == "call_1_0"


def test_legacy_functions_are_tools_upstream_and_function_call_back(gw: GatewayProcess,
                                                                     upstream: AnthropicUpstream) -> None:
    """A client of OpenAI's legacy form (`functions`, `function_call`) through a translating route:
    Anthropic gets tools and a forced tool choice; the answer names the call in `function_call`."""
    functions: Any = [{"name": "lookup", "parameters": {"type": "object"}}]
    r = oai(gw).chat.completions.create(model="claude", functions=functions, function_call={"name": "lookup"},
                                        messages=[{"role": "user", "content": "call:lookup"}])
    sent = upstream.last_request
    assert sent is not None and sent["tools"][0]["name"] == "lookup"
    assert sent["tool_choice"] == {"type": "tool", "name": "lookup"}
    msg = r.choices[0].message
    assert msg.function_call is not None and msg.function_call.name == "lookup"
    assert json.loads(msg.function_call.arguments) == {"x": 1} and not msg.tool_calls
    assert r.choices[0].finish_reason == "function_call"
    parts = list(oai(gw).chat.completions.create(model="claude", stream=True, functions=functions,
                                                 messages=[{"role": "user", "content": "call:lookup"}]))
    deltas = [p.choices[0].delta for p in parts if p.choices]
    assert not any(d.tool_calls for d in deltas)
    calls = [d.function_call for d in deltas if d.function_call is not None]
    assert calls[0].name == "lookup" and json.loads("".join(c.arguments or "" for c in calls)) == {"x": 1}
    assert [p.choices[0].finish_reason for p in parts if p.choices][-1] == "function_call"
    with pytest.raises(openai.BadRequestError, match="functions"):
        oai(gw).chat.completions.create(model="claude", functions=functions, tools=[  # both forms: refused
            {"type": "function", "function": {"name": "lookup"}}], messages=[{"role": "user", "content": "q"}])


def test_an_ollama_tool_result_no_call_matches_keeps_an_id(gw: GatewayProcess, upstream: AnthropicUpstream) -> None:
    ol = ollama.Client(host=gw.url, headers={"Authorization": f"Bearer {MASTER}"}, timeout=20)
    ol.chat(model="claude", stream=False, messages=[{"role": "user", "content": "q"},
                                                     {"role": "tool", "tool_name": "clock", "content": "12:00"}])
    sent = upstream.last_request
    assert sent is not None and sent["messages"][0]["content"][0] == {
        "type": "tool_result", "tool_use_id": "call_1_clock", "content": [{"type": "text", "text": "12:00"}]}


def test_an_anthropic_clients_thinking_budget_goes_as_sent(gw: GatewayProcess, upstream: AnthropicUpstream) -> None:
    """From an Anthropic client through the canonical types (a plugin in scope: not bytes through).
    issue 14: the budget went as its effort's (5000: high, 4096)."""
    an = anthropic.Anthropic(base_url=gw.url, api_key=MASTER, max_retries=0, timeout=20)
    an.messages.create(model="claude-guarded", max_tokens=9000, thinking={"type": "enabled", "budget_tokens": 5000},
                       messages=[{"role": "user", "content": "hi"}])
    sent = upstream.last_request
    assert sent is not None and sent["thinking"] == {"type": "enabled", "budget_tokens": 5000}
    assert sent["messages"][0]["content"] == [{"type": "text", "text": "hi"}]  # re-encoded: not the client's bytes


def test_anthropic_and_ollama_clients(gw: GatewayProcess) -> None:
    an = anthropic.Anthropic(base_url=gw.url, api_key=MASTER, max_retries=0, timeout=20)
    with an.messages.stream(model="claude", max_tokens=20, messages=[{"role": "user", "content": "a b"}]) as s:
        assert "".join(s.text_stream) == "echo: a b"
    ol = ollama.Client(host=gw.url, headers={"Authorization": f"Bearer {MASTER}"}, timeout=20)
    r = ol.chat(model="claude", messages=[{"role": "user", "content": "hi"}], stream=False)
    assert r.message.content == "echo: hi" and r.done_reason == "stop"


def test_failures_before_and_after_the_first_byte(gw: GatewayProcess) -> None:
    with pytest.raises(openai.APIStatusError) as overloaded:
        oai(gw).chat.completions.create(model="claude", messages=[{"role": "user", "content": "fault:529"}])
    assert overloaded.value.status_code == 502 and "Overloaded" in str(overloaded.value.body)
    got: list[str] = []
    with pytest.raises(openai.APIError) as mid:
        for p in oai(gw).chat.completions.create(model="claude", stream=True,
                                                 messages=[{"role": "user", "content": "x fault:error_event"}]):
            got.append(p.choices[0].delta.content or "" if p.choices else "")
    assert "".join(got) == "echo: " and "overloaded" in str(mid.value.body or mid.value.message).lower()
