"""Ollama's native requests as clients send them, mapped to canonical: options, images, tool calls
and the tool messages that answer them, format, stream's default, and refusals that name the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clawdbot.codecs import ollama_inbound as oi
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
        Message("tool", "done", tool_call_id="call_1_0"),
    ]
    assert (req.temperature, req.max_tokens, req.stop) == (0.0, 5, ["x"])
    assert req.response_format == {"type": "json_object"}
    assert req.extra == {"options": {"top_k": 3, "num_ctx": 8192}, "think": True, "keep_alive": "5m"}


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
