"""Call ids for tool results that arrive without one. Ollama's tool messages name the tool
(`tool_name`), OpenAI's legacy `function` messages name the function: neither names the call. The
canonical tool message answers a call by its id (OpenAI's `tool_call_id`, Anthropic's
`tool_use_id`), so a result takes the id of the latest assistant turn's first unanswered call of its name, else
a made-up id that is the same for the same conversation (`call_<message index>_<name>`: a growing
conversation keeps it, so a prompt cache still matches). The name stays on the message either way."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")  # Anthropic's tool_use ids: ^[a-zA-Z0-9_-]+$


def made_up_id(at: int, name: str | None) -> str:
    """A deterministic id for the tool result at message `at`, which no earlier call matches."""
    return f"call_{at}_{_UNSAFE.sub('_', name or '')[:64]}".rstrip("_")


class Calls:
    """The calls of the conversation's latest assistant turn that made any, by name: results answer
    them in order (two calls of one tool, two results: the first result answers the first call)."""

    def __init__(self) -> None:
        self._open: dict[str, list[str]] = {}

    def turn(self, calls: list[tuple[str, str]]) -> None:
        """An assistant turn's calls, (name, id) each: the ones results answer from now on."""
        self._open = {}
        for name, call_id in calls:
            self._open.setdefault(name, []).append(call_id)

    def answer(self, at: int, name: str | None) -> str:
        """The id of the call a result named `name` at message `at` answers."""
        waiting = self._open.get(name or "")
        return waiting.pop(0) if waiting else made_up_id(at, name)
