"""What each capture says, as a client should see it through the gateway in any dialect (read off
the capture files by hand, so that a gateway that loses or changes something is caught). The
mock upstream (in-process) answers "mock reply to: <last user text>", one token a word."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Expected:
    text: str = ""
    reasoning: str = ""
    calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    finish: str = "stop"
    usage: tuple[int, int] | None = None  # (prompt, completion) when the capture reports them
    fragments: int = 0  # argument pieces the upstream streamed (its calls' deltas with text)
    extra: dict[str, Any] = field(default_factory=dict)


WEATHER = ("get_weather", {"location": "Paris"})
TIME = ("get_time", {"tz": "Europe/Paris"})
# "\u00d7" (the multiplication sign): non-ASCII text through every codec
SIX_SEVEN = Expected(text="6 \u00d7 7 = 42.", reasoning="The user asks for 6 times 7.", usage=(14, 12))
JSON = '{"answer": 42}'
PARTIAL = Expected(text="Partial answer", finish="")

# (upstream, capture) -> whole answer; STREAMED overrides where the streamed capture differs
WHOLE: dict[tuple[str, str], Expected] = {
    ("openai", "text"): Expected(text="echo: Say hello", usage=(2, 3)),
    ("openai", "length"): Expected(text="Say hello mendatanguser", finish="length", usage=(11, 4)),
    ("openai", "tool_call"): Expected(calls=(("get_weather", {"x": 1}),), finish="tool_calls", usage=(52, 6),
                                      fragments=3),
    ("openai", "tool_calls"): Expected(calls=(WEATHER, TIME), finish="tool_calls", usage=(81, 44), fragments=7),
    ("openai", "json"): Expected(text=JSON, usage=(29, 5)),
    ("openai", "reasoning"): SIX_SEVEN,
    ("openai", "error_after"): PARTIAL,
    ("ollama", "text"): Expected(text="Hello! How are you today?", usage=(26, 298)),
    ("ollama", "length"): Expected(text="The sky is", finish="length", usage=(26, 3)),
    ("ollama", "tool_call"): Expected(calls=(("get_weather", {"city": "Tokyo"}),), finish="tool_calls",
                                      usage=(169, 15), fragments=1),
    ("ollama", "tool_calls"): Expected(calls=(("get_weather", {"city": "Paris"}), TIME), finish="tool_calls",
                                       usage=(212, 41), fragments=2),
    ("ollama", "json"): Expected(text=JSON, usage=(31, 6)),
    ("ollama", "reasoning"): SIX_SEVEN,
    ("ollama", "error_after"): PARTIAL,
    ("anthropic", "text"): Expected(text="Hello!", usage=(12, 6)),
    ("anthropic", "length"): Expected(text="The sky is", finish="length", usage=(12, 3)),
    ("anthropic", "tool_call"): Expected(text="Okay, let's check the weather.",
                                         calls=(("get_weather", {"location": "San Francisco, CA"}),),
                                         finish="tool_calls", usage=(472, 89), fragments=2),
    ("anthropic", "tool_calls"): Expected(text="I'll check both.", calls=(WEATHER, TIME), finish="tool_calls",
                                          usage=(506, 102), fragments=4),
    ("anthropic", "json"): Expected(text=JSON, usage=(29, 5)),
    ("anthropic", "reasoning"): SIX_SEVEN,
    ("anthropic", "error_after"): PARTIAL,
}
STREAMED: dict[tuple[str, str], Expected] = {
    # llama.cpp's server sends no usage event in a stream, although asked (tests/fixtures/README.md)
    ("openai", "length"): replace(WHOLE["openai", "length"], usage=None),
    ("ollama", "text"): Expected(text="The sky appears blue because of Rayleigh scattering.", usage=(26, 282)),
}


# What each upstream's error says (its capture), which the client must be told, before or after the start.
ERROR_WORDS = {"openai": "Sorry about that!", "ollama": "exit status 2", "anthropic": "Overloaded"}
STREAM_ERROR_WORDS = {"openai": "Sorry about that!", "ollama": "unexpected EOF", "anthropic": "Overloaded"}


def mock(last_user: str, max_tokens: int | None = None, prompt_words: int = 0) -> Expected:
    words = f"mock reply to: {last_user}".split()
    if max_tokens is not None and len(words) > max_tokens:
        return Expected(text=" ".join(words[:max_tokens]), finish="length", usage=(prompt_words, max_tokens))
    return Expected(text=" ".join(words), usage=(prompt_words, len(words)))


def of(upstream: str, capture: str, stream: bool) -> Expected:
    if stream and (upstream, capture) in STREAMED:
        return STREAMED[upstream, capture]
    return WHOLE[upstream, capture]
