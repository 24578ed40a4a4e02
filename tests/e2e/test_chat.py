"""Chat completions through a real gateway process with the official openai client."""

from __future__ import annotations

import json
import uuid
from typing import Any

import openai
import pytest

from tests.e2e.harness import GatewayProcess
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream as OpenAITestServer

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.mark.parametrize("model", ["chat-oa", "chat-ol", "oa/mock-a", "llama3.2", "ol/qwen3:0.6b"])
def test_non_stream(client: openai.OpenAI, model: str) -> None:
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello there"}])
    assert r.choices[0].message.role == "assistant"
    assert "hello there" in (r.choices[0].message.content or "")
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0


@pytest.mark.parametrize("model", ["chat-oa", "chat-ol"])
def test_stream_with_usage(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "one two three four"}],
        stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "one two three four" in text
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 3  # not buffered
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].completion_tokens > 0
    assert not chunks[-1].choices  # the usage chunk comes last, with no choices


@pytest.mark.parametrize("model", ["chat-oa", "chat-ol"])
def test_stream_without_usage_hides_it(client: openai.OpenAI, model: str) -> None:
    chunks = list(client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True))
    assert chunks and all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_usage_reaches_access_log_when_client_did_not_ask(
    client: openai.OpenAI, gateway: GatewayProcess
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="chat-oa", messages=[{"role": "user", "content": "count me"}], stream=True)
    rid = raw.headers["x-request-id"]
    list(raw.parse())
    line = next(json.loads(x) for x in gateway.wait_for_log(rid).splitlines()
                if rid in x and '"access"' in x)
    assert line["completion_tokens"] > 0 and line["prompt_tokens"] > 0
    assert line["service"] == "oa" and line["status"] == 200 and line["ttft_ms"] is not None


@pytest.mark.parametrize("model", ["chat-oa", "chat-ol"])
def test_tool_call_non_stream(client: openai.OpenAI, model: str) -> None:
    prompt = "call:get_weather" if model == "chat-oa" else "call get_weather city=Tokyo"
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                       tools=[WEATHER_TOOL])  # type: ignore[list-item]
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls"
    assert msg.tool_calls and msg.tool_calls[0].function.name == "get_weather"
    json.loads(msg.tool_calls[0].function.arguments)


@pytest.mark.parametrize("model", ["chat-oa", "chat-ol"])
def test_tool_call_stream_reassembles(client: openai.OpenAI, model: str) -> None:
    prompt = "call:get_weather" if model == "chat-oa" else "call get_weather city=Tokyo"
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                            tools=[WEATHER_TOOL], stream=True)  # type: ignore[list-item]
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for c in stream:
        if not c.choices:
            continue
        finish = c.choices[0].finish_reason or finish
        for t in c.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(t.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += t.id or ""
            if t.function:
                entry["name"] += t.function.name or ""
                entry["arguments"] += t.function.arguments or ""
    assert finish == "tool_calls"
    assert calls[0]["name"] == "get_weather" and calls[0]["id"]
    assert isinstance(json.loads(calls[0]["arguments"]), dict)


def test_tool_results_go_upstream(
    client: openai.OpenAI, ollama_upstream: OllamaTestServer, openai_upstream: OpenAITestServer
) -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    client.chat.completions.create(model="chat-ol", messages=messages, tools=[WEATHER_TOOL])  # type: ignore[arg-type,list-item]
    sent = ollama_upstream.last_request
    assert sent["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}
    assert sent["messages"][2]["role"] == "tool" and sent["messages"][2]["content"] == "sunny"
    client.chat.completions.create(model="chat-oa", messages=messages, tools=[WEATHER_TOOL])  # type: ignore[arg-type,list-item]
    body = openai_upstream.requests[-1].body
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


def test_options_map_to_ollama(client: openai.OpenAI, ollama_upstream: OllamaTestServer) -> None:
    client.chat.completions.create(
        model="chat-ol", messages=[{"role": "user", "content": "x"}], max_tokens=7, temperature=0.3,
        top_p=0.9, stop=["END"], seed=42, response_format={"type": "json_object"},
    )
    sent = ollama_upstream.last_request
    assert sent["model"] == "llama3.2:latest"
    opts = sent["options"]
    assert opts["num_predict"] == 7 and opts["temperature"] == 0.3 and opts["top_p"] == 0.9
    assert opts["stop"] == ["END"] and opts["seed"] == 42 and opts["num_ctx"] == 4096
    assert sent["format"] == "json"


def test_image_parts_reach_ollama_as_base64(client: openai.OpenAI, ollama_upstream: OllamaTestServer) -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    client.chat.completions.create(model="chat-ol", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
    ]}])
    sent = ollama_upstream.last_request["messages"][0]
    assert sent["images"] == [png] and "what is this" in sent["content"]


def test_reasoning_content(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="chat-oa", messages=[{"role": "user", "content": "reasoning: why"}])
    assert getattr(r.choices[0].message, "reasoning_content", None)
    chunks = list(client.chat.completions.create(
        model="chat-oa", messages=[{"role": "user", "content": "reasoning: why"}], stream=True))
    assert any(getattr(c.choices[0].delta, "reasoning_content", None) for c in chunks if c.choices)


def test_failover_to_next_target(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="failover", messages=[{"role": "user", "content": "still here"}])
    assert raw.headers["x-clawdbot-service"] == "oa"
    assert "still here" in (raw.parse().choices[0].message.content or "")


def test_request_id_round_trip(
    client: openai.OpenAI, gateway: GatewayProcess, openai_upstream: OpenAITestServer
) -> None:
    # A client's UUID goes upstream as it came.
    mine = str(uuid.uuid4())
    raw = client.chat.completions.with_raw_response.create(
        model="chat-oa", messages=[{"role": "user", "content": "hi"}], extra_headers={"X-Request-ID": mine})
    assert raw.headers["x-request-id"] == mine and openai_upstream.requests[-1].headers["X-Request-ID"] == mine
    line = access_line(gateway, mine)
    assert line["upstream_request_id"] is None  # the same id: nothing more to log
    # Any other sane id is the client's for the response and the logs; the upstream gets a UUID
    # (some servers, llama.cpp's among them, refuse anything else), which the access log names.
    raw = client.chat.completions.with_raw_response.create(
        model="chat-oa", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"X-Request-ID": "trace-abc.123_x"})
    assert raw.headers["x-request-id"] == "trace-abc.123_x"
    sent = openai_upstream.requests[-1].headers["X-Request-ID"]
    assert str(uuid.UUID(sent)) == sent and access_line(gateway, "trace-abc.123_x")["upstream_request_id"] == sent
    # An insane one is replaced by a fresh UUID, everywhere.
    bad = client.chat.completions.with_raw_response.create(
        model="chat-oa", messages=[{"role": "user", "content": "hi"}], extra_headers={"X-Request-ID": "bad id!" * 30})
    rid = bad.headers["x-request-id"]
    assert str(uuid.UUID(rid)) == rid and openai_upstream.requests[-1].headers["X-Request-ID"] == rid


@pytest.mark.parametrize("fault", ["fault:linger", "fault:linger=3000"])
def test_a_complete_stream_is_logged_200_whatever_the_upstream_does_after_done(
    client: openai.OpenAI, gateway: GatewayProcess, openai_upstream: OpenAITestServer, fault: str
) -> None:
    # The upstream sends [DONE] and then holds its response open (or ends it only 3 s later); the
    # openai package closes the connection on [DONE]. The answer was complete: 200, not 499.
    rid = str(uuid.uuid4())
    stream = client.chat.completions.create(model="chat-oa", stream=True, extra_headers={"X-Request-ID": rid},
                                            messages=[{"role": "user", "content": f"hi {fault}"}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == f"echo: hi {fault}"
    line = access_line(gateway, rid)
    assert line["status"] == 200 and line["error"] is None and line["completion_tokens"] > 0
    if fault == "fault:linger":  # and the gateway let go of the upstream's connection
        assert openai_upstream.wait_for_disconnect(rid, timeout=10)


def access_line(gateway: GatewayProcess, rid: str) -> dict[str, Any]:
    needle = f'"request_id":"{rid}","event":"access"'
    gateway.wait_for_log(needle)
    return dict(next(json.loads(x) for x in gateway.log().splitlines() if needle in x))


def test_logs_hold_no_content_or_keys(client: openai.OpenAI, gateway: GatewayProcess) -> None:
    secret = "my-private-prompt-7f3a"
    raw = client.chat.completions.with_raw_response.create(
        model="chat-oa", messages=[{"role": "user", "content": secret}])
    gateway.wait_for_log(raw.headers["x-request-id"])
    log = gateway.log()
    assert secret not in log
    assert "sk-test-master" not in log
