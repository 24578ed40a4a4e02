"""The inbound dialects, one driver each, all through their official client packages. A driver
turns an `Ask` into its dialect's request and the client's answer into a `Reply`; `abort` starts
a stream, reads until the first text, and hangs up. A new inbound dialect is one more module like
drive_openai.py and one line in `build`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from tests.conformance.asks import Ask, Call, Reply


class Driver(Protocol):
    name: str  # the inbound dialect's key in the matrix
    title: str  # how docs/conformance.md names it
    endpoint: str

    def send(self, ask: Ask) -> Reply: ...

    def abort(self, ask: Ask) -> str: ...


class CallParts:
    """Streamed tool calls put together by index; `fragments` counts the argument pieces."""

    def __init__(self) -> None:
        self.parts: dict[int, list[str]] = {}
        self.fragments = 0

    def add(self, index: int, id: str | None, name: str | None, arguments: str | None) -> None:
        part = self.parts.setdefault(index, ["", "", ""])
        part[0] = part[0] or id or ""
        part[1] = part[1] or name or ""
        if arguments:
            part[2] += arguments
            self.fragments += 1

    def calls(self) -> list[Call]:
        return [Call(p[0], p[1], json.loads(p[2] or "{}")) for _, p in sorted(self.parts.items())]


def build(name: str, url: str, key: str) -> Driver:
    from tests.conformance import drive_anthropic, drive_ollama, drive_openai, drive_responses

    drivers: dict[str, Callable[[str, str], Any]] = {
        "openai": drive_openai.OpenAIDriver,
        "anthropic": drive_anthropic.AnthropicDriver,
        "ollama": drive_ollama.OllamaDriver,
        "responses": drive_responses.ResponsesDriver,
    }
    driver: Driver = drivers[name](url, key)
    return driver
