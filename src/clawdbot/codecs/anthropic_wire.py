"""Anthropic Messages API wire types (docs.anthropic.com, "Messages"): what a client sends to
POST /v1/messages, decoded strictly enough that a wrong field is a 400 that names it."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class Base64Source(msgspec.Struct, tag="base64", tag_field="type"):
    media_type: str
    data: str


class UrlSource(msgspec.Struct, tag="url", tag_field="type"):
    url: str


class TextBlock(msgspec.Struct, tag="text", tag_field="type"):
    text: str
    cache_control: dict[str, Any] | None = None


class ImageBlock(msgspec.Struct, tag="image", tag_field="type"):
    source: Base64Source | UrlSource
    cache_control: dict[str, Any] | None = None


class ToolUseBlock(msgspec.Struct, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: Any = msgspec.field(default_factory=dict)
    cache_control: dict[str, Any] | None = None


class ToolResultBlock(msgspec.Struct, tag="tool_result", tag_field="type"):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] | None = None
    is_error: bool | None = None
    cache_control: dict[str, Any] | None = None


class ThinkingBlock(msgspec.Struct, tag="thinking", tag_field="type"):
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(msgspec.Struct, tag="redacted_thinking", tag_field="type"):
    data: str


Block = TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock


class WireMessage(msgspec.Struct):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class WireTool(msgspec.Struct):
    name: str
    input_schema: dict[str, Any] | None = None
    description: str | None = None
    type: str | None = None  # "custom" or absent; server tools (web_search, ...) are refused
    cache_control: dict[str, Any] | None = None


class WireMessagesRequest(msgspec.Struct):
    model: str
    messages: list[WireMessage]
    max_tokens: int
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    tools: list[WireTool] | None = None
    tool_choice: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    service_tier: str | None = None


class Usage(msgspec.Struct, gc=False):
    """An answer's `usage` (a message's, message_start's and message_delta's)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None

    def prompt(self) -> int:  # input_tokens leaves out what the prompt cache held
        return self.input_tokens + (self.cache_read_input_tokens or 0) + (self.cache_creation_input_tokens or 0)


class WireCountTokensRequest(msgspec.Struct):
    model: str
    messages: list[WireMessage]
    system: str | list[TextBlock] | None = None
    tools: list[WireTool] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
