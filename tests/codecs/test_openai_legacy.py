"""OpenAI's legacy `functions` / `function_call` (codecs/openai_legacy.py): read as tools and a tool
choice, refused with a 400 naming the field when they cannot be, and the answer written back in the
legacy shape, whole and streamed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clawdbot.codecs import openai as oa
from clawdbot.codecs.openai_legacy import legacy_answer, legacy_events
from clawdbot.core.errors import BadRequest
from clawdbot.core.types import ChatChunk, ChatResponse, Message, ToolCall, ToolCallDelta, Usage

FUNCTIONS = [{"name": "lookup", "description": "Find it", "parameters": {"type": "object"}}]


def parse(**fields: Any) -> Any:
    body = {"model": "m", "messages": [{"role": "user", "content": "q"}], **fields}
    return oa.parse_chat_request(json.dumps(body).encode())[1]


def test_functions_and_function_call_are_tools_and_a_tool_choice() -> None:
    req = parse(functions=FUNCTIONS, function_call={"name": "lookup"})
    assert req.legacy_functions and [t.name for t in req.tools] == ["lookup"]
    assert req.tools[0].description == "Find it" and req.tools[0].parameters == {"type": "object"}
    assert req.tool_choice == {"name": "lookup"}
    assert parse(functions=FUNCTIONS, function_call="none").tool_choice == "none"
    assert parse(functions=FUNCTIONS).tool_choice is None
    assert not parse(tools=[{"type": "function", "function": FUNCTIONS[0]}]).legacy_functions


@pytest.mark.parametrize(("fields", "param"), [
    ({"functions": FUNCTIONS, "tools": [{"type": "function", "function": FUNCTIONS[0]}]}, "functions"),
    ({"functions": FUNCTIONS, "tool_choice": "auto"}, "functions"),
    ({"function_call": "auto"}, "function_call"),
    ({"functions": FUNCTIONS, "function_call": {"name": "other"}}, "function_call.name"),
    ({"functions": FUNCTIONS, "function_call": {"name": ""}}, "function_call"),
    ({"functions": FUNCTIONS, "function_call": "required"}, "function_call"),
])
def test_what_cannot_be_read_is_a_400_naming_the_field(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse(**fields)
    assert err.value.param == param


def test_a_whole_answer_names_its_first_call_in_function_call() -> None:
    req = parse(functions=FUNCTIONS)
    calls = [ToolCall("c1", "lookup", '{"x":1}'), ToolCall("c2", "lookup", "{}")]
    resp = ChatResponse("chatcmpl-1", "m", 1, Message("assistant", None, tool_calls=calls), "tool_calls", Usage(3, 4))
    out = json.loads(oa.encode_answer(resp, req))
    choice = out["choices"][0]
    assert choice["message"]["function_call"] == {"name": "lookup", "arguments": '{"x":1}'}
    assert "tool_calls" not in choice["message"] and choice["finish_reason"] == "function_call"
    assert out["usage"]["completion_tokens"] == 4
    plain = json.loads(oa.encode_answer(resp, parse()))  # the modern form: as it was
    assert len(plain["choices"][0]["message"]["tool_calls"]) == 2


def test_stream_deltas_carry_function_call() -> None:
    enc = oa.LegacyChunks("chatcmpl-1", "m", 1, include_usage=True)
    first = enc.encode(ChatChunk(tool_calls=[ToolCallDelta(0, "c1", "lookup", '{"x"')]))
    more = enc.encode(ChatChunk(tool_calls=[ToolCallDelta(0, None, None, ":1}")]))
    more += enc.encode(ChatChunk(finish_reason="tool_calls"))
    end = enc.closing(False, Usage(3, 4), True)
    events = [json.loads(e[6:]) for e in (first + more + end).split(b"\n\n") if e.startswith(b"data: {")]
    deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
    assert deltas[0]["function_call"] == {"name": "lookup", "arguments": '{"x"'}
    assert deltas[1]["function_call"] == {"arguments": ":1}"}
    assert not any("tool_calls" in d for d in deltas)
    assert [e["choices"][0]["finish_reason"] for e in events if e["choices"]][-1] == "function_call"
    assert b"data: [DONE]" in end


def test_events_without_calls_pass_as_they_are() -> None:
    text = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n'
    assert legacy_events(text) == text
    body = b'{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}'
    assert json.loads(legacy_answer(body)) == json.loads(body)
