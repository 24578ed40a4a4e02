"""The `type: anthropic` codec on the captured shapes (tests/fixtures/anthropic/): a whole message
and a stream with text and a tool call decoded to canonical; requests encoded for the API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clawdbot.codecs import anthropic_upstream as au
from clawdbot.codecs.sse import EventSplitter, event_data
from clawdbot.core.errors import BadRequest, UpstreamError
from clawdbot.core.types import ChatChunk, ChatRequest, ImagePart, Message, TextPart, Tool, ToolCall, Usage

FIXTURES = Path(__file__).parent.parent / "fixtures" / "anthropic"


def test_a_whole_message() -> None:
    r = au.decode_response((FIXTURES / "message.json").read_bytes())
    assert r.message.content == "Hello!" and r.finish_reason == "stop" and r.usage == Usage(12, 6)
    assert r.model == "claude-sonnet-4-5"


def test_a_stream_with_text_and_a_tool_call() -> None:
    dec, chunks = au.StreamDecoder(), []
    for ev in EventSplitter().feed((FIXTURES / "stream_tool_use.sse").read_bytes()):
        data = event_data(ev)
        if data is not None:
            c = dec.decode(data)
            if c is None:
                break
            chunks.append(c)
    assert dec.done
    text = "".join(c.content or "" for c in chunks)
    args = "".join(d.arguments or "" for c in chunks for d in c.tool_calls or ())
    starts = [d for c in chunks for d in c.tool_calls or () if d.name]
    assert text == "Okay, let's check the weather." and args == '{"location": "San Francisco, CA"}'
    assert [(d.index, d.id, d.name) for d in starts] == [(0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather")]
    assert chunks[-1] == ChatChunk(finish_reason="tool_calls", usage=Usage(472, 89))


def test_an_error_event_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        au.StreamDecoder().decode(b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')


def test_requests_are_encoded_for_the_api() -> None:
    req = ChatRequest("m", [
        Message("system", "a"), Message("developer", "b"),
        Message("user", [TextPart("look"), ImagePart("data:image/jpeg;base64,QUJD")]),
        Message("assistant", "ok", tool_calls=[ToolCall("c1", "f", '{"q": 1}')], reasoning="hidden"),
        Message("tool", "r1", tool_call_id="c1"), Message("user", "more"),
    ], tools=[Tool("f", None, None)], tool_choice="required", stop=["X"], temperature=0.5)
    body = json.loads(au.encode_request(req, "claude-x"))
    assert body["system"] == "a\n\nb" and body["max_tokens"] == 4096 and body["stop_sequences"] == ["X"]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image", "source": {
            "type": "base64", "media_type": "image/jpeg", "data": "QUJD"}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"},
                                          {"type": "tool_use", "id": "c1", "name": "f", "input": {"q": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1",
                                      "content": [{"type": "text", "text": "r1"}]},
                                     {"type": "text", "text": "more"}]},
    ]
    assert body["tools"] == [{"name": "f", "description": "", "input_schema": {"type": "object", "properties": {}}}]
    assert body["tool_choice"] == {"type": "any"}
    with pytest.raises(BadRequest) as hot:
        au.encode_request(ChatRequest("m", [Message("user", "x")], temperature=1.5), "m")
    assert hot.value.param == "temperature"


def test_a_model_list_is_an_object_with_a_data_array() -> None:
    body = b'{"data":[{"type":"model","id":"claude-a"},{"id":7},"x",{"id":"claude-b"}],"has_more":false}'
    assert au.decode_models(body) == ["claude-a", "claude-b"]
    for bad in (b'{"data":1}', b'{"data":{"id":"x"}}', b'{"models":[]}', b'[{"id":"x"}]', b'"data"'):
        with pytest.raises(UpstreamError, match="invalid model list"):
            au.decode_models(bad)
