"""Canonical request, response and stream types every codec converts to and from.

msgspec Structs: cheap to build, no per-field validation at construction (validation happens once,
at the wire edge, in the codec that decodes the client's JSON).
"""

from __future__ import annotations

from typing import Any

import msgspec


class TextPart(msgspec.Struct, tag="text", tag_field="type"):
    text: str


class ImagePart(msgspec.Struct, tag="image", tag_field="type"):
    # An http(s) URL or a data: URL (base64). Codecs that need raw bytes decode the data URL.
    url: str
    detail: str | None = None


Part = TextPart | ImagePart


class ToolCall(msgspec.Struct):
    id: str
    name: str
    arguments: str  # JSON text, exactly as the model produced it


class Message(msgspec.Struct):
    role: str  # system | developer | user | assistant | tool
    content: str | list[Part] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning: str | None = None

    def text(self) -> str:
        """The message's text, with image parts left out."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


class Tool(msgspec.Struct):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


# `extra` options only an OpenAI-compatible upstream can honour: token ids of its own tokenizer, and
# log probabilities, which no canonical answer carries back; every other encoder refuses them by name.
UNCARRIED = ("logit_bias", "logprobs", "top_logprobs")


class ChatRequest(msgspec.Struct):
    model: str
    messages: list[Message]
    stream: bool = False
    tools: list[Tool] | None = None
    # "auto" | "none" | "required" | {"name": "fn"} (a forced function)
    tool_choice: str | dict[str, Any] | None = None
    # {"type": "text" | "json_object"} or {"type": "json_schema", "json_schema": {...}}
    response_format: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None  # the output limit, whichever field (max_completion_tokens) it came in
    stop: list[str] | None = None
    seed: int | None = None
    include_usage: bool = False
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    user: str | None = None
    # Options the client sent that no canonical field holds (e.g. logit_bias): forwarded to
    # upstreams of the same dialect, dropped for others.
    extra: dict[str, Any] | None = None
    # The field the client named its limit in ("max_tokens" / "max_completion_tokens"), when the
    # fast path passes its bytes on: renamed for an upstream that honours the other one.
    limit_field: str | None = None
    # The thinking budget in tokens when the client named one (Anthropic's `thinking.budget_tokens`),
    # beside `extra.reasoning_effort`: an Anthropic upstream gets it back as sent, others the effort.
    reasoning_budget: int | None = None
    # The client used OpenAI's legacy `functions` / `function_call` (read as tools and tool_choice):
    # its answer names the call in `function_call` (codecs/openai_legacy.py).
    legacy_functions: bool = False


class Usage(msgspec.Struct):
    prompt_tokens: int = 0  # all of the prompt, what a cache held included
    completion_tokens: int = 0  # all of the output, reasoning included
    cached_tokens: int = 0  # of prompt_tokens, read from the upstream's prompt cache
    reasoning_tokens: int = 0  # of completion_tokens, spent reasoning (when the upstream says)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ChatResponse(msgspec.Struct):
    id: str
    model: str
    created: int
    message: Message
    finish_reason: str | None = "stop"
    usage: Usage | None = None


class ToolCallDelta(msgspec.Struct):
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str | None = None


class ChatChunk(msgspec.Struct):
    """One canonical stream event: any of a content delta, reasoning delta, tool-call deltas,
    the finish reason, and (last) the usage."""

    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    role: str | None = None
    model: str | None = None  # the upstream model that produced it, when the upstream says


class EmbeddingRequest(msgspec.Struct):
    model: str
    input: list[str]
    dimensions: int | None = None
    encoding_format: str | None = None  # "float" | "base64"; applied when encoding the response
    user: str | None = None


class EmbeddingResponse(msgspec.Struct):
    model: str
    vectors: list[list[float]]
    usage: Usage


class ModelInfo(msgspec.Struct):
    id: str
    owned_by: str
    created: int = 0
    description: str | None = None
