"""The Anthropic Messages codec: the request mapped to canonical messages (system, blocks, tool
results, thinking), refusals that name the field, and the stream encoder's event sequence."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clawdbot.codecs import anthropic as an
from clawdbot.codecs.anthropic_stream import StreamEncoder
from clawdbot.core.errors import BadRequest, GatewayError
from clawdbot.core.types import ChatChunk, ImagePart, Message, TextPart, ToolCall, ToolCallDelta, Usage


def parse(**body: Any) -> Any:
    return an.parse_messages_request(json.dumps({"model": "m", "max_tokens": 10, **body}).encode())


def test_blocks_become_canonical_messages() -> None:
    req = parse(system=[{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}], top_k=5,
                stop_sequences=["END"], tool_choice={"type": "any"}, messages=[
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                  "data": "AAAA"}}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                                          {"type": "redacted_thinking", "data": "xx"},
                                          {"type": "text", "text": "calling"},
                                          {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": [1]}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": True},
                                     {"type": "text", "text": "and?"}]},
    ])
    assert req.messages == [
        Message("system", "Be brief."),
        Message("user", [TextPart("look"), ImagePart("data:image/png;base64,AAAA")]),
        Message("assistant", "calling", tool_calls=[ToolCall("t1", "f", '{"a":[1]}')], reasoning="hm"),
        Message("tool", "Error: boom", tool_call_id="t1"),
        Message("user", "and?"),
    ]
    assert req.stop == ["END"] and req.tool_choice == "required" and req.extra == {"top_k": 5}
    assert req.max_tokens == 10 and req.include_usage


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"max_tokens": 5, "messages": []}, "messages"),
    ({"max_tokens": 5, "temperature": 1.5, "messages": [{"role": "user", "content": "x"}]}, "temperature"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "b"}]}]},
     "messages.0.content.0"),
    ({"max_tokens": 5, "tools": [{"type": "web_search_20250305", "name": "web_search"}],
      "messages": [{"role": "user", "content": "x"}]}, "tools.0.type"),
    ({"max_tokens": 5, "tool_choice": {"type": "tool"}, "messages": [{"role": "user", "content": "x"}]},
     "tool_choice"),
])
def test_bad_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as err:
        an.parse_messages_request(json.dumps({"model": "m", **body}).encode())
    assert err.value.param == param


def test_errors_have_anthropics_types() -> None:
    body = json.loads(an.encode_error(GatewayError("slow down"), 429))
    assert body == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    assert an.error_type(401) == "authentication_error" and an.error_type(502) == "api_error"


def events(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in data.decode().split("\n\n"):
        if block:
            name, payload = block.split("\n")
            out.append((name.removeprefix("event: "), json.loads(payload.removeprefix("data: "))))
    return out


def test_the_stream_encoder_opens_and_closes_blocks_in_order() -> None:
    enc = StreamEncoder("m")
    data = enc.start(12)
    for chunk in (ChatChunk(role="assistant"), ChatChunk(reasoning="think"), ChatChunk(content="Hi"),
                  ChatChunk(content="!"),
                  ChatChunk(tool_calls=[ToolCallDelta(0, "c0", "f", '{"a"')]),
                  ChatChunk(tool_calls=[ToolCallDelta(0, arguments=": 1}")]),
                  ChatChunk(tool_calls=[ToolCallDelta(1, "c1", "g", "{}")]),
                  ChatChunk(finish_reason="tool_calls"), ChatChunk(usage=Usage(12, 7))):
        data += enc.encode(chunk)
    data += enc.done()
    seq = [(n, e.get("index"), (e.get("delta") or e.get("content_block") or {}).get("type")) for n, e in events(data)]
    assert seq == [
        ("message_start", None, None), ("ping", None, None),
        ("content_block_start", 0, "thinking"), ("content_block_delta", 0, "thinking_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"), ("content_block_delta", 1, "text_delta"),
        ("content_block_delta", 1, "text_delta"), ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"), ("content_block_delta", 2, "input_json_delta"),
        ("content_block_delta", 2, "input_json_delta"), ("content_block_stop", 2, None),
        ("content_block_start", 3, "tool_use"), ("content_block_delta", 3, "input_json_delta"),
        ("content_block_stop", 3, None),
        ("message_delta", None, None), ("message_stop", None, None),
    ]
    evs = events(data)
    assert evs[0][1]["message"]["usage"] == {"input_tokens": 12, "output_tokens": 0}
    assert evs[9][1]["content_block"] == {"type": "tool_use", "id": "c0", "name": "f", "input": {}}
    assert evs[-2][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert evs[-2][1]["usage"] == {"output_tokens": 7, "input_tokens": 12}


def test_a_whole_answer_and_broken_tool_json() -> None:
    from clawdbot.core.types import ChatResponse

    resp = ChatResponse("x", "up", 0, Message("assistant", "ok", tool_calls=[ToolCall("c", "f", "{not json")]),
                        "length", Usage(3, 4))
    body = json.loads(an.encode_message_response(resp, "asked"))
    assert body["model"] == "asked" and body["stop_reason"] == "max_tokens"
    assert body["content"] == [{"type": "text", "text": "ok"},
                               {"type": "tool_use", "id": "c", "name": "f", "input": {"_raw": "{not json"}}]
    assert body["usage"] == {"input_tokens": 3, "output_tokens": 4} and body["id"].startswith("msg_")
