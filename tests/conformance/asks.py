"""What a cell asks and what a client saw, in no dialect: a driver (clients.py) turns an `Ask` into
its dialect's request through the official client package and the answer back into a `Reply`."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

# a 1x1 PNG
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
PNG_B64 = base64.b64encode(PNG).decode()
TOOLS = (("get_weather", "The weather in a place", {"type": "object", "properties": {"location": {"type": "string"}}}),
         ("get_time", "The time in a time zone", {"type": "object", "properties": {"tz": {"type": "string"}}}))


@dataclass(frozen=True)
class User:
    text: str
    image: bool = False  # a PNG goes with the text


@dataclass(frozen=True)
class Said:
    """An earlier assistant turn: text, or tool calls (id, name, arguments)."""

    text: str = ""
    calls: tuple[tuple[str, str, dict[str, Any]], ...] = ()


@dataclass(frozen=True)
class Result:
    """A tool's result for the call `call_id` (of the tool `name`)."""

    call_id: str
    name: str
    text: str


Turn = User | Said | Result


@dataclass(frozen=True)
class Ask:
    model: str
    turns: tuple[Turn, ...]
    stream: bool = False
    system: str | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    json_mode: bool = False
    tools: bool = False  # offer TOOLS


@dataclass(frozen=True)
class Call:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Failure:
    """An error the client raised: an HTTP status before the answer, or None in a stream."""

    status: int | None
    kind: str  # the dialect's error type (OpenAI `type`, Anthropic `error.type`, Ollama: "error")
    message: str


@dataclass
class Reply:
    text: str = ""
    reasoning: str = ""
    calls: list[Call] = field(default_factory=list)
    finish: str | None = None  # canonical: stop, length, tool_calls
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    fragments: int = 0  # tool-call argument pieces the client received
    failure: Failure | None = None
