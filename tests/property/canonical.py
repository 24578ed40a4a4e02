"""Canonical values (core/types.py) for the round trips, and the one way every stream is compared:
what its chunks add up to (text, reasoning, each tool call, the finish reason, the usage)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from hypothesis import strategies as st

from clawdbot.core.types import ChatChunk, ChatResponse, Message, ToolCall, ToolCallDelta, Usage
from tests.property.strategies import clean_text, name_text
from tests.property.wire import args_object

FINISH = ["stop", "length", "tool_calls", "content_filter"]
tokens = st.integers(0, 2**40)


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    prompt, completion = draw(tokens), draw(tokens)
    return Usage(prompt, completion, draw(st.integers(0, prompt)), draw(st.integers(0, completion)))


arguments = args_object.map(lambda a: msgspec.json.encode(a).decode())  # JSON object text, as models write it
tool_calls = st.builds(ToolCall, name_text, name_text, arguments)
assistant = st.builds(Message, st.just("assistant"), st.none() | clean_text,
                      tool_calls=st.none() | st.lists(tool_calls, min_size=1, max_size=3),
                      reasoning=st.none() | clean_text)
responses = st.builds(ChatResponse, clean_text, clean_text, st.integers(0, 2**33), assistant,
                      st.none() | st.sampled_from(FINISH), st.none() | usages())
# any mix of fields, as a relay might pass them on (OpenAI's chunk format can say all of it)
chunks = st.lists(st.builds(
    ChatChunk, content=st.none() | clean_text, reasoning=st.none() | clean_text,
    tool_calls=st.none() | st.lists(st.builds(ToolCallDelta, st.integers(0, 3), st.none() | name_text,
                                              st.none() | name_text, st.none() | clean_text), max_size=2),
    finish_reason=st.none() | st.sampled_from(FINISH), usage=st.none() | usages()), max_size=8)


@st.composite
def answer_streams(draw: st.DrawFn) -> list[ChatChunk]:
    """A stream as a model answers: reasoning and text in fragments, then each tool call (its id and
    name first, then its JSON arguments in fragments), then the finish reason and the usage."""
    out: list[ChatChunk] = []
    for _ in range(draw(st.integers(0, 6))):
        text = draw(clean_text)
        out.append(ChatChunk(content=text) if draw(st.booleans()) else ChatChunk(reasoning=text))
    for i, call in enumerate(draw(st.lists(tool_calls, max_size=3))):
        out.append(ChatChunk(tool_calls=[ToolCallDelta(i, call.id, call.name, "")]))
        text = call.arguments
        cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=4)))
        for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True):
            out.append(ChatChunk(tool_calls=[ToolCallDelta(i, arguments=text[a:b])]))
    out.append(ChatChunk(finish_reason=draw(st.sampled_from(FINISH))))
    if draw(st.booleans()):
        out.append(ChatChunk(usage=draw(usages())))
    return out


def total(chunks: Iterable[ChatChunk | None]) -> dict[str, Any]:
    """What a stream says, whatever the events it was cut into."""
    content, reasoning = [], []
    calls: dict[int, list[Any]] = {}
    finish = usage = None
    for c in chunks:
        if c is None:
            continue
        content.append(c.content or "")
        reasoning.append(c.reasoning or "")
        for d in c.tool_calls or ():
            call = calls.setdefault(d.index, [None, None, ""])
            call[0] = call[0] if call[0] is not None else d.id
            call[1] = call[1] if call[1] is not None else d.name
            call[2] += d.arguments or ""
        finish = c.finish_reason if c.finish_reason is not None else finish
        usage = c.usage if c.usage is not None else usage
    return {"content": "".join(content), "reasoning": "".join(reasoning), "calls": calls, "finish": finish,
            "usage": usage}
