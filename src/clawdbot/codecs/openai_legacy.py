"""OpenAI's legacy function calling at the request's top level: `functions` (the tools, each a
function) and `function_call` (`"none"`, `"auto"` or `{"name": ...}`: the tool choice). A request
that takes the canonical way reads them as `tools` and `tool_choice`, so that every upstream dialect
gets them, and its answer is written back in the legacy shape the client asked in: the first call
as the message's `function_call` (`{name, arguments}`, no id) and the finish reason
`function_call`, whole and streamed. A request whose bytes go to an OpenAI-compatible upstream as
they came (the fast path) is answered by that upstream in its own legacy shape.

The rest of the legacy form (an assistant message's `function_call`, the `function` role) is read
with the messages (codecs/openai.py, tool_ids.py)."""

from __future__ import annotations

from typing import Any

import msgspec

from clawdbot.codecs import openai_wire as w
from clawdbot.core.errors import BadRequest
from clawdbot.core.types import Tool


def legacy_tools(wire: w.WireChatRequest) -> tuple[list[Tool] | None, Any]:
    """The legacy `functions` and `function_call` as canonical tools and a wire-form tool choice."""
    if wire.tools is not None or wire.tool_choice is not None:
        raise BadRequest("Use either 'tools' and 'tool_choice' or the legacy 'functions' and 'function_call', "
                         "not both.", param="functions", code="invalid_value")
    if wire.function_call is not None and not wire.functions:
        raise BadRequest("'function_call' needs 'functions'.", param="function_call", code="invalid_value")
    tools = [Tool(f.name, f.description, f.parameters, f.strict) for f in wire.functions or ()] or None
    choice = wire.function_call
    if isinstance(choice, dict):
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest("'function_call' as an object is {\"name\": <one of the functions>}.",
                             param="function_call", code="invalid_value")
        if tools is None or name not in {t.name for t in tools}:
            raise BadRequest(f"'function_call' names {name!r}, which is not in 'functions'.",
                             param="function_call.name", code="invalid_value")
        return tools, {"type": "function", "function": {"name": name}}
    if choice is not None and choice not in ("none", "auto"):
        raise BadRequest(f"Invalid 'function_call': {choice!r} (none, auto or {{\"name\": ...}}).",
                         param="function_call", code="invalid_value")
    return tools, choice


_decode = msgspec.json.decode
_encode = msgspec.json.encode


def _legacy_choice(choice: dict[str, Any], key: str) -> None:
    """One choice's message (or delta) with its first tool call as `function_call`."""
    part = choice.get(key)
    if isinstance(part, dict):
        calls = part.pop("tool_calls", None)
        if isinstance(calls, list) and calls:
            first = next((c for c in calls if isinstance(c, dict) and c.get("index", 0) == 0), None)
            fn = first.get("function") if isinstance(first, dict) else None
            if isinstance(fn, dict):
                part["function_call"] = {k: v for k, v in fn.items() if k in ("name", "arguments")}
    if choice.get("finish_reason") == "tool_calls":
        choice["finish_reason"] = "function_call"


def legacy_answer(body: bytes) -> bytes:
    """A whole chat completion (OpenAI's JSON) with its tool calls in the legacy shape."""
    doc = _decode(body)
    for choice in doc.get("choices") or ():
        if isinstance(choice, dict):
            _legacy_choice(choice, "message")
    return _encode(doc)


def legacy_events(events: bytes) -> bytes:
    """Stream events (`data: {...}\\n\\n`, one or more) with their tool-call deltas in the legacy
    shape; other events (the usage, `[DONE]`, an error) as they are."""
    out = []
    for event in events.split(b"\n\n"):
        if event.startswith(b"data: {") and (b'"tool_calls"' in event or b'"finish_reason":"tool_calls"' in event):
            doc = _decode(event[6:])
            for choice in doc.get("choices") or ():
                if isinstance(choice, dict):
                    _legacy_choice(choice, "delta")
            event = b"data: " + _encode(doc)
        out.append(event)
    return b"\n\n".join(out)

