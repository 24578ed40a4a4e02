"""Ollama's native requests as clients send them, mapped to canonical: options, images, tool calls
and the tool messages that answer them, format, stream's default, and refusals that name the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clawdbot.codecs import anthropic_upstream as au
from clawdbot.codecs import ollama_chat as ol
from clawdbot.codecs import ollama_inbound as oi
from clawdbot.codecs import openai as oa
from clawdbot.core.errors import BadRequest
from clawdbot.core.types import ImagePart, Message, TextPart, ToolCall


def chat(**body: Any) -> Any:
    return oi.parse_chat(json.dumps({"model": "m", **body}).encode())


def test_chat_maps_options_images_and_tool_turns() -> None:
    req = chat(messages=[
        {"role": "user", "content": "see", "images": ["QUJD"]},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
        {"role": "tool", "content": "done", "tool_name": "f"},
    ], options={"temperature": 0, "num_predict": 5, "stop": ["x"], "top_k": 3, "num_ctx": 8192},
        format="json", think=True, keep_alive="5m")
    assert req.stream is True  # Ollama's default
    assert req.messages == [
        Message("user", [TextPart("see"), ImagePart("data:image/png;base64,QUJD")]),
        Message("assistant", "", tool_calls=[ToolCall("call_1_0", "f", '{"a":1}')]),
        Message("tool", "done", name="f", tool_call_id="call_1_0"),
    ]
    assert (req.temperature, req.max_tokens, req.stop) == (0.0, 5, ["x"])
    assert req.response_format == {"type": "json_object"}
    assert req.extra == {"options": {"top_k": 3, "num_ctx": 8192}, "think": True, "keep_alive": "5m"}


def test_a_tool_result_no_call_matches_keeps_its_name_in_every_dialect() -> None:
    """issue 14: the name was lost (the canonical message had only a made-up id)."""
    req = chat(messages=[{"role": "user", "content": "q"}, {"role": "tool", "content": "r", "tool_name": "get.time"}])
    assert req.messages[1] == Message("tool", "r", name="get.time", tool_call_id="call_1_get_time")
    assert json.loads(ol.encode_chat_request(req, "m", None))["messages"][1] == {
        "role": "tool", "content": "r", "tool_name": "get.time"}
    assert json.loads(oa.encode_chat_request(req))["messages"][1] == {
        "role": "tool", "content": "r", "name": "get.time", "tool_call_id": "call_1_get_time"}
    result = json.loads(au.encode_request(req, "m"))["messages"][0]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "call_1_get_time"


def test_results_answer_the_latest_turns_calls_in_order() -> None:
    call = {"function": {"name": "f", "arguments": {}}}
    req = chat(messages=[{"role": "assistant", "content": "", "tool_calls": [call]},
                         {"role": "assistant", "content": "", "tool_calls": [call, call]},
                         *[{"role": "tool", "content": str(n), "tool_name": "f"} for n in range(3)]])
    assert [m.tool_call_id for m in req.messages[2:]] == ["call_1_0", "call_1_1", "call_4_f"]


def test_generate_is_a_chat_and_a_schema_format_is_json_schema() -> None:
    req, _ = oi.parse_generate(json.dumps({"model": "m", "prompt": "p", "system": "s", "stream": False,
                                           "format": {"type": "object"}}).encode())
    assert req.messages == [Message("system", "s"), Message("user", "p")] and req.stream is False
    assert req.response_format == {"type": "json_schema", "json_schema": {"name": "response",
                                                                          "schema": {"type": "object"}}}


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ({"messages": [], "options": {"temperature": "hot"}}, "options.temperature"),
    ({"messages": [], "options": {"stop": "x"}}, "options.stop"),
    ({"messages": [], "format": "yaml"}, "format"),
])
def test_bad_chat_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as err:
        chat(**body)
    assert err.value.param == param


def test_generate_refuses_what_needs_the_models_template() -> None:
    for name, value in (("raw", True), ("template", "{{ .Prompt }}"), ("suffix", "end"), ("context", [1, 2])):
        with pytest.raises(BadRequest) as err:
            oi.parse_generate(json.dumps({"model": "m", "prompt": "p", name: value}).encode())
        assert err.value.param == name
