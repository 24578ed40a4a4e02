"""The Ollama codec against recorded wire captures (tests/fixtures/ollama/) and its own mappings."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import msgspec
import pytest

from clawdbot.codecs import ollama
from clawdbot.core.errors import BadRequest, UpstreamError
from clawdbot.core.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    ImagePart,
    Message,
    Part,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ollama"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def decode_stream(data: bytes) -> list[ChatChunk]:
    return [c for c in map(ollama.decode_stream_line, data.split(b"\n")) if c is not None]


# --- recorded captures -> canonical ---------------------------------------------------------------


def test_decode_chat_capture() -> None:
    resp = ollama.decode_chat_response(fixture("chat.json"))
    assert resp.model == "llama3.2"
    assert resp.message == Message(role="assistant", content="Hello! How are you today?")
    assert resp.finish_reason == "stop"
    assert resp.usage == Usage(prompt_tokens=26, completion_tokens=298)
    assert resp.created == int(datetime.fromisoformat("2023-12-12T14:13:43Z").timestamp())
    assert resp.id.startswith("chatcmpl-")


def test_decode_stream_capture() -> None:
    chunks = decode_stream(fixture("chat_stream.ndjson"))
    assert "".join(c.content or "" for c in chunks) == "The sky appears blue because of Rayleigh scattering."
    assert all(c.finish_reason is None and c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.content is None
    assert last.finish_reason == "stop"
    assert last.usage == Usage(prompt_tokens=26, completion_tokens=282)
    assert {c.model for c in chunks} == {"llama3.2"}


def test_decode_tool_stream_capture() -> None:
    first, last = decode_stream(fixture("chat_tools_stream.ndjson"))
    assert first.tool_calls is not None
    (call,) = first.tool_calls
    assert (call.index, call.name) == (0, "get_weather")
    assert call.id is not None and call.id.startswith("call_")
    assert json.loads(call.arguments or "") == {"city": "Tokyo"}
    assert first.content is None and first.finish_reason is None
    # The final line carries no calls, so per line it reads "stop"; a stream merger upgrades it.
    assert last.finish_reason == "stop"
    assert last.usage == Usage(prompt_tokens=169, completion_tokens=15)
    assert ollama.finish_reason("stop", True) == "tool_calls"


def test_decode_embed_capture() -> None:
    resp = ollama.decode_embed_response(fixture("embed.json"))
    assert resp.model == "all-minilm"
    assert len(resp.vectors) == 1 and len(resp.vectors[0]) == 10
    assert resp.vectors[0][0] == pytest.approx(0.010071029)
    assert resp.usage == Usage(prompt_tokens=8)


def test_decode_tags_capture() -> None:
    assert ollama.decode_tags(fixture("tags.json")) == [
        "llama3.2:latest",
        "qwen3:0.6b",
        "all-minilm:latest",
        "codellama:13b",
    ]


# --- stream lines ---------------------------------------------------------------------------------


def test_thinking_line_becomes_reasoning() -> None:
    line = (
        b'{"model":"qwen3","created_at":"2025-05-30T10:00:00.1Z",'
        b'"message":{"role":"assistant","content":"","thinking":"Hmm"},"done":false}'
    )
    assert ollama.decode_stream_line(line) == ChatChunk(reasoning="Hmm", model="qwen3")


def test_blank_and_empty_lines_carry_nothing() -> None:
    assert ollama.decode_stream_line(b"") is None
    assert ollama.decode_stream_line(b"  \r") is None
    empty = b'{"model":"m","message":{"role":"assistant","content":""},"done":false}'
    assert ollama.decode_stream_line(empty) is None


def test_length_done_reason() -> None:
    line = (
        b'{"model":"m","message":{"role":"assistant","content":""},'
        b'"done_reason":"length","done":true,"eval_count":3}'
    )
    chunk = ollama.decode_stream_line(line)
    assert chunk is not None
    assert chunk.finish_reason == "length"
    assert chunk.usage == Usage(prompt_tokens=0, completion_tokens=3)


def test_error_line_raises() -> None:
    with pytest.raises(UpstreamError, match="model runner has unexpectedly stopped"):
        ollama.decode_stream_line(b'{"error":"model runner has unexpectedly stopped"}')


def test_malformed_line_raises_clearly() -> None:
    with pytest.raises(UpstreamError, match="not valid JSON"):
        ollama.decode_stream_line(b'{"model":"m","message":')
    with pytest.raises(UpstreamError, match="not a chat reply"):
        ollama.decode_stream_line(b'{"model":"m","done":"yes"}')


# --- canonical request -> Ollama -----------------------------------------------------------------


def encode(req: ChatRequest, num_ctx: int | None = None) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(ollama.encode_chat_request(req, "llama3.2:latest", num_ctx))
    return decoded


def test_options_mapping() -> None:
    req = ChatRequest(
        model="public-name",
        messages=[Message(role="developer", content="be brief"), Message(role="user", content="hi")],
        stream=True,
        temperature=0.2,
        top_p=0.9,
        max_tokens=64,
        stop=["\n\n"],
        seed=7,
        frequency_penalty=0.5,
        presence_penalty=0.25,
    )
    assert encode(req, num_ctx=8192) == {
        "model": "llama3.2:latest",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "stream": True,
        "options": {
            "temperature": 0.2,
            "top_p": 0.9,
            "num_predict": 64,
            "num_ctx": 8192,
            "stop": ["\n\n"],
            "seed": 7,
            "frequency_penalty": 0.5,
            "presence_penalty": 0.25,
        },
    }


def test_minimal_request_has_no_options() -> None:
    body = encode(ChatRequest(model="m", messages=[Message(role="user", content="hi")]))
    assert body == {
        "model": "llama3.2:latest",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
    }


def test_images_become_base64() -> None:
    parts: list[Part] = [TextPart(text="what is this?"), ImagePart(url="data:image/png;base64,iVBORw0KGgo=")]
    body = encode(ChatRequest(model="m", messages=[Message(role="user", content=parts)]))
    assert body["messages"] == [{"role": "user", "content": "what is this?", "images": ["iVBORw0KGgo="]}]


def test_linked_images_are_refused() -> None:
    msg = Message(role="user", content=[ImagePart(url="https://example.com/cat.png")])
    with pytest.raises(BadRequest, match="data: URLs"):
        encode(ChatRequest(model="m", messages=[msg]))


def test_tool_history() -> None:
    messages = [
        Message(role="user", content="weather in Tokyo?"),
        Message(
            role="assistant",
            tool_calls=[ToolCall(id="call_1", name="get_weather", arguments='{"city":"Tokyo"}')],
        ),
        Message(role="tool", tool_call_id="call_1", content="11 degrees celsius"),
    ]
    tools = [Tool(name="get_weather", description="Weather now", parameters={"type": "object"})]
    body = encode(ChatRequest(model="m", messages=messages, tools=tools))
    assert body["messages"] == [
        {"role": "user", "content": "weather in Tokyo?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}],
        },
        {"role": "tool", "content": "11 degrees celsius", "tool_name": "get_weather"},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather now",
                "parameters": {"type": "object"},
            },
        }
    ]


def test_tool_choice_none_offers_no_tools() -> None:
    req = ChatRequest(
        model="m", messages=[Message(role="user", content="x")], tools=[Tool(name="f")], tool_choice="none"
    )
    assert "tools" not in encode(req)


def test_bad_tool_arguments_are_the_clients_fault() -> None:
    msg = Message(role="assistant", tool_calls=[ToolCall(id="c", name="f", arguments="[1, 2]")])
    with pytest.raises(BadRequest, match="JSON object"):
        encode(ChatRequest(model="m", messages=[msg]))


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, "json"),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            {"type": "object"},
        ),
    ],
)
def test_response_format(response_format: dict[str, object], expected: object) -> None:
    body = encode(ChatRequest(model="m", messages=[], response_format=response_format))
    assert body.get("format") == expected


@pytest.mark.parametrize(
    ("extra", "think"),
    [
        (None, None),
        ({"think": True}, True),
        ({"think": "high"}, "high"),
        ({"reasoning_effort": "low"}, True),
        ({"reasoning_effort": "none"}, False),
    ],
)
def test_think(extra: dict[str, object] | None, think: object) -> None:
    assert encode(ChatRequest(model="m", messages=[], extra=extra)).get("think") == think


# --- embeddings -----------------------------------------------------------------------------------


def test_embed_request() -> None:
    body = ollama.encode_embed_request(
        EmbeddingRequest(model="x", input=["a", "b"], dimensions=4), "all-minilm"
    )
    assert json.loads(body) == {"model": "all-minilm", "input": ["a", "b"], "dimensions": 4}


# --- canonical -> Ollama replies (the reverse direction) ------------------------------------------


def test_chat_response_round_trip() -> None:
    resp = ChatResponse(
        id="x",
        model="llama3.2",
        created=1_700_000_000,
        message=Message(role="assistant", content="hi", reasoning="thought"),
        usage=Usage(prompt_tokens=3, completion_tokens=1),
    )
    wire = ollama.encode_chat_response(resp)
    captured = list(json.loads(fixture("chat.json")))
    assert list(json.loads(wire)) == [*captured[:5], "prompt_eval_count", "eval_count"]
    back = ollama.decode_chat_response(wire)
    assert (back.model, back.created, back.message, back.usage) == (
        resp.model,
        resp.created,
        resp.message,
        resp.usage,
    )


def test_tool_call_response_is_stop_on_the_wire() -> None:
    call = ToolCall(id="call_9", name="get_weather", arguments='{"city":"Paris"}')
    resp = ChatResponse(
        id="x",
        model="m",
        created=0,
        message=Message(role="assistant", tool_calls=[call]),
        finish_reason="tool_calls",
    )
    wire = json.loads(ollama.encode_chat_response(resp))
    assert wire["done_reason"] == "stop"
    assert wire["message"]["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ]
    assert ollama.decode_chat_response(ollama.encode_chat_response(resp)).finish_reason == "tool_calls"


def test_stream_chunk_round_trip() -> None:
    line = ollama.encode_stream_chunk(
        ChatChunk(content="Hel"), "llama3.2", created_at="2025-01-01T00:00:00.5Z"
    )
    assert line == (
        b'{"model":"llama3.2","created_at":"2025-01-01T00:00:00.5Z",'
        b'"message":{"role":"assistant","content":"Hel"},"done":false}\n'
    )
    assert list(json.loads(line)) == list(json.loads(fixture("chat_stream.ndjson").split(b"\n")[0]))
    final = ChatChunk(finish_reason="length", usage=Usage(prompt_tokens=5, completion_tokens=2))
    decoded = ollama.decode_stream_line(ollama.encode_stream_chunk(final, "llama3.2"))
    assert decoded == ChatChunk(finish_reason="length", usage=final.usage, model="llama3.2")


def test_stream_tool_call_chunk() -> None:
    chunk = ChatChunk(tool_calls=[ToolCallDelta(index=1, id="c", name="f", arguments='{"b":1}')])
    wire = json.loads(ollama.encode_stream_chunk(chunk, "m"))
    assert wire["message"]["tool_calls"] == [{"function": {"index": 1, "name": "f", "arguments": {"b": 1}}}]


def test_rfc3339_matches_go() -> None:
    assert ollama.rfc3339(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert ollama.rfc3339(1_700_000_000_123_456_700) == "2023-11-14T22:13:20.1234567Z"


def test_decoded_types_are_canonical() -> None:
    # The provider hands these straight to other codecs: they must be plain canonical structs.
    resp = ollama.decode_chat_response(fixture("chat.json"))
    assert msgspec.json.decode(msgspec.json.encode(resp), type=ChatResponse) == resp
