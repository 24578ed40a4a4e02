"""The test OpenAI upstream, checked with the official `openai` client (no gateway involved): if the
real client parses what the server sends, the server speaks OpenAI's wire format."""

from __future__ import annotations

import json
import math
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageFunctionToolCall

from tests.upstreams.openai_server import FIXTURES, OpenAIUpstream, embedding

TOOLS: list[Any] = [{
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather for a city.",
                 "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}},
}]
# The requests whose replies (deterministic mode) are the recorded captures in tests/fixtures/openai/.
CAPTURES: dict[str, tuple[str, dict[str, Any] | None]] = {
    "chat.json": ("/v1/chat/completions", {
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}),
    "chat_stream.sse": ("/v1/chat/completions", {
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}], "stream": True}),
    "chat_stream_usage.sse": ("/v1/chat/completions", {
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}], "stream": True,
        "stream_options": {"include_usage": True}}),
    "chat_tools_stream.sse": ("/v1/chat/completions", {
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "call:get_weather for Paris"}],
        "tools": TOOLS, "stream": True}),
    "embeddings.json": ("/v1/embeddings", {
        "model": "text-embedding-3-small", "input": ["hello world", "goodbye"], "encoding_format": "float"}),
    "models.json": ("/v1/models", None),
}


def fetch(url: str, body: dict[str, Any] | None) -> bytes:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return bytes(response.read())


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIUpstream]:
    with OpenAIUpstream() as server:
        yield server


@pytest.fixture
def client(upstream: OpenAIUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=upstream.base_url, api_key="sk-test", max_retries=0, timeout=5)


def say(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_chat_non_stream(client: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="mock-a", messages=say("hello there"), extra_headers={"X-Request-ID": "rid-plain"})
    completion = raw.parse()
    assert completion.id.startswith("chatcmpl-") and completion.object == "chat.completion"
    assert completion.model == "mock-a"
    choice = completion.choices[0]
    assert choice.message.content == "echo: hello there" and choice.message.refusal is None
    assert choice.finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 2 + 3
    assert raw.headers["x-request-id"].startswith("req_")
    record = upstream.last_request
    assert record is not None and record.request_id == "rid-plain"
    assert record.headers["x-request-id"] == "rid-plain" and record.body["messages"] == say("hello there")
    assert list(json.loads(raw.http_response.content)) == [
        "id", "object", "created", "model", "choices", "usage", "service_tier", "system_fingerprint"]


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="mock-b", messages=say("one two three"), stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert [c.choices[0].finish_reason for c in chunks[:-1]][-1] == "stop"
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4
    assert len({c.id for c in chunks}) == 1


def test_stream_without_usage_has_no_usage_key(upstream: OpenAIUpstream) -> None:
    body = {"model": "m", "messages": say("hi"), "stream": True}
    events = fetch(upstream.base_url + "/chat/completions", body).decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all('"usage"' not in e for e in events)


def test_tool_call_stream_reassembled_by_client(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model="mock-a", messages=say("please call:get_weather now"), tools=TOOLS,
    ) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls or []
    assert len(calls) == 1 and isinstance(calls[0], ChatCompletionMessageFunctionToolCall)
    assert calls[0].id.startswith("call_") and calls[0].type == "function"
    assert calls[0].function.name == "get_weather" and json.loads(calls[0].function.arguments) == {"x": 1}


def test_tool_call_non_stream(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="m", messages=say("call:get_weather"), tools=TOOLS)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls or []
    assert isinstance(calls[0], ChatCompletionMessageFunctionToolCall)
    assert calls[0].function.arguments == '{"x": 1}'


def test_reasoning_content(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="m", messages=say("reasoning: why"), stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    thinking = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    assert thinking == "thinking about: reasoning: why"
    first_content = next(i for i, d in enumerate(deltas) if d.content)
    assert all(getattr(d, "reasoning_content", None) is None for d in deltas[first_content:])
    message = client.chat.completions.create(model="m", messages=say("reasoning: why")).choices[0].message
    assert getattr(message, "reasoning_content", None) == thinking


def test_models(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["mock-a", "mock-b"]


def test_embeddings_float_and_base64(client: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    as_float = client.embeddings.create(model="e", input=["a b", "c"], encoding_format="float")
    as_b64 = client.embeddings.create(model="e", input=["a b", "c"])  # the client asks for base64
    record = upstream.last_request
    assert record is not None and record.body["encoding_format"] == "base64"
    assert as_float.usage.prompt_tokens == 3 and as_float.model == "e"
    for f, b in zip(as_float.data, as_b64.data, strict=True):
        assert len(f.embedding) == 8 and f.embedding == pytest.approx(b.embedding, rel=1e-6)
        assert math.isclose(sum(v * v for v in f.embedding), 1.0, rel_tol=1e-5)
    assert as_float.data[0].embedding == pytest.approx(embedding("a b"))


def test_api_key_check(client: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    upstream.api_key = "sk-right"
    try:
        with pytest.raises(openai.AuthenticationError) as err:
            client.chat.completions.create(model="m", messages=say("hi"))
        assert err.value.status_code == 401 and err.value.code == "invalid_api_key"
        assert err.value.type == "invalid_request_error"
        good = client.with_options(api_key="sk-right")
        assert good.chat.completions.create(model="m", messages=say("hi")).choices[0].message.content
    finally:
        upstream.api_key = None


def test_error_statuses(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="m", messages=say("fault:429"))
    assert limited.value.response.headers["retry-after"] == "3"
    assert limited.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model="m", messages=say("fault:500"), stream=True)
    assert failed.value.type == "server_error"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=say("fault:400"))


def test_midstream_drop_raises(client: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        stream = client.chat.completions.create(model="m", messages=say("x fault:midstream"), stream=True)
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert received == ["", "echo:", " x"]


def test_malformed(client: openai.OpenAI) -> None:
    with pytest.raises(json.JSONDecodeError):
        list(client.chat.completions.create(model="m", messages=say("fault:malformed"), stream=True))
    with pytest.raises((json.JSONDecodeError, openai.APIResponseValidationError)):
        client.chat.completions.create(model="m", messages=say("fault:malformed"))


def test_hang_and_client_timeout_is_seen(client: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.3).chat.completions.create(
            model="m", messages=say("fault:hang"), extra_headers={"X-Request-ID": "rid-hang"})
    assert upstream.wait_for_disconnect("rid-hang")
    with pytest.raises(openai.APITimeoutError):
        list(client.with_options(timeout=0.3).chat.completions.create(
            model="m", messages=say("fault:hang_midstream"), stream=True,
            extra_headers={"X-Request-ID": "rid-hang-mid"}))
    assert upstream.wait_for_disconnect("rid-hang-mid")


def test_client_abandoning_a_stream_is_recorded(client: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    stream = client.chat.completions.create(
        model="m", messages=say("fault:slow=100 fault:chunks=50"), stream=True,
        extra_headers={"X-Request-ID": "rid-abandon"})
    assert [next(stream).choices[0].delta.content for _ in range(2)] == ["", "echo:"]
    stream.close()
    assert upstream.wait_for_disconnect("rid-abandon")
    assert upstream.wait_for(lambda: upstream.in_flight == 0)
    assert "rid-plain" not in upstream.disconnected


def test_slow_and_chunk_count(client: openai.OpenAI) -> None:
    started = time.monotonic()
    chunks = list(client.chat.completions.create(
        model="m", messages=say("fault:chunks=6 fault:slow=40"), stream=True))
    assert time.monotonic() - started >= 0.25  # 8 events, 40 ms before each but the first
    contents = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert contents == ["echo:", " fault:chunks=6", " fault:slow=40", " w3", " w4", " w5"]


def test_history_is_bounded_and_counted() -> None:
    with OpenAIUpstream(history=3) as small:
        for _ in range(5):
            fetch(small.base_url + "/models", None)
        assert small.request_count == 5 and [r.seq for r in small.requests] == [3, 4, 5]


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_fixtures_are_what_the_server_sends(name: str) -> None:
    path, body = CAPTURES[name]
    with OpenAIUpstream(deterministic=True) as server:
        assert fetch(server.url + path, body) == (FIXTURES / name).read_bytes()
