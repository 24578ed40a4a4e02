"""api/collect.py: canonical stream chunks -> the one message a non-stream answer carries."""

from __future__ import annotations

from clawdbot.api.collect import Answer
from clawdbot.core.types import ChatChunk, Message, ToolCall, ToolCallDelta, Usage


def test_content_and_reasoning_are_joined() -> None:
    a = Answer()
    for c in (ChatChunk(role="assistant", content=""), ChatChunk(reasoning="hmm "), ChatChunk(reasoning="ok"),
              ChatChunk(content="Hel"), ChatChunk(content="lo"), ChatChunk(finish_reason="stop"),
              ChatChunk(usage=Usage(3, 4))):
        a.add(c)
    assert a.message() == Message("assistant", "Hello", reasoning="hmm ok")
    assert a.finish == "stop"


def test_tool_call_fragments_are_put_back_together_in_index_order() -> None:
    a = Answer()
    for c in (ChatChunk(tool_calls=[ToolCallDelta(1, "call_b", "beta", "")]),
              ChatChunk(tool_calls=[ToolCallDelta(0, "call_a", "alpha", '{"x"')]),
              ChatChunk(tool_calls=[ToolCallDelta(0, arguments=": 1}")]),
              ChatChunk(tool_calls=[ToolCallDelta(1, arguments="{}")]),
              ChatChunk(finish_reason="tool_calls")):
        a.add(c)
    assert a.message() == Message("assistant", None, tool_calls=[
        ToolCall("call_a", "alpha", '{"x": 1}'), ToolCall("call_b", "beta", "{}")])
    assert a.finish == "tool_calls"


def test_an_empty_answer_is_an_empty_message() -> None:
    assert Answer().message() == Message("assistant", "")
