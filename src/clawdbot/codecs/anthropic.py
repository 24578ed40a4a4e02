"""Anthropic Messages dialect <-> canonical, for clients that send POST /v1/messages (docs/dialects.md
has the field table). Pure functions; the stream encoder is codecs/anthropic_stream.py.

Inbound mapping: `system` becomes a system message; a user turn's text and image blocks its parts,
each `tool_result` block a tool message; an assistant turn's text its content, `tool_use` blocks
its tool calls (input as JSON text), `thinking` its reasoning. `tool_choice` any -> required,
tool -> a forced function. `top_k` has no canonical field: it goes in `extra` (OpenAI-compatible
upstreams get it as is). `thinking` becomes `reasoning_effort` by its budget (up to 1024 tokens
low, up to 2048 medium, more high; `adaptive` medium), which each upstream maps or refuses
(docs/dialects.md); an `enabled` budget is also kept as it came (`reasoning_budget`), so an
Anthropic upstream gets the same number back. Server tools (web_search and the like) are refused."""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from clawdbot.codecs import anthropic_wire as w
from clawdbot.codecs.decoding import DECODE_ERRORS
from clawdbot.codecs.openai import decode_error
from clawdbot.core.errors import BadRequest, GatewayError, UpstreamError
from clawdbot.core.types import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    Part,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)

_request_decoder = msgspec.json.Decoder(w.WireMessagesRequest)
_count_decoder = msgspec.json.Decoder(w.WireCountTokensRequest)
_encode = msgspec.json.Encoder().encode

# canonical finish reason -> Anthropic stop_reason
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}

# HTTP status -> Anthropic error type (their documented pairs; anything else is an api_error)
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 405: "invalid_request_error", 413: "request_too_large",
               415: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
               503: "overloaded_error", 529: "overloaded_error"}


def message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def stop_reason(finish: str | None) -> str:
    return STOP_REASONS.get(finish or "stop", "end_turn")


# ---- errors --------------------------------------------------------------------------------------


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "api_error")


def encode_error(exc: GatewayError, status: int) -> bytes:
    """{"type": "error", "error": {"type": ..., "message": ...}}: Anthropic's shape."""
    err: dict[str, Any] = {"type": error_type(status), "message": exc.message}
    if isinstance(exc, UpstreamError) and exc.upstream_status is not None:
        err["upstream_status"] = exc.upstream_status
    return _encode({"type": "error", "error": err})


# ---- inbound -------------------------------------------------------------------------------------


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    try:
        return decoder.decode(body)
    except DECODE_ERRORS as exc:
        raise decode_error(exc) from None


def parse_messages_request(body: bytes) -> ChatRequest:
    wire: w.WireMessagesRequest = _decode(_request_decoder, body)
    if not wire.model:
        raise BadRequest("model: must not be empty", param="model", code="invalid_value")
    if wire.max_tokens < 1:
        raise BadRequest("max_tokens: must be at least 1", param="max_tokens", code="invalid_value")
    for name, value, hi in (("temperature", wire.temperature, 1.0), ("top_p", wire.top_p, 1.0)):
        if value is not None and not 0.0 <= value <= hi:
            raise BadRequest(f"{name}: {value} is outside [0, {hi:g}]", param=name, code="invalid_value")
    extra: dict[str, Any] = {}
    if wire.top_k is not None:
        extra["top_k"] = wire.top_k
    effort = thinking_effort(wire.thinking)
    if effort is not None:
        extra["reasoning_effort"] = effort
    thinking = wire.thinking or {}
    budget = thinking.get("budget_tokens") if thinking.get("type") == "enabled" else None  # checked: an int >= 1
    if wire.tool_choice and wire.tool_choice.get("disable_parallel_tool_use") is True:
        extra["parallel_tool_calls"] = False  # OpenAI's name for it, which each upstream maps or refuses
    user = wire.metadata.get("user_id") if wire.metadata else None
    return ChatRequest(
        model=wire.model,
        messages=messages_of(wire.system, wire.messages),
        stream=bool(wire.stream),
        tools=tools_of(wire.tools),
        tool_choice=tool_choice_of(wire.tool_choice),
        temperature=wire.temperature,
        top_p=wire.top_p,
        max_tokens=wire.max_tokens,
        stop=wire.stop_sequences or None,
        user=user if isinstance(user, str) else None,
        include_usage=True,
        extra=extra or None,
        reasoning_budget=budget,
    )


def thinking_effort(thinking: dict[str, Any] | None) -> str | None:
    """Anthropic's `thinking` setting as an OpenAI-style reasoning effort; None when off."""
    kind = thinking.get("type") if thinking else None
    if kind == "adaptive":
        return "medium"
    if kind != "enabled":
        if kind not in (None, "disabled"):
            raise BadRequest(f"thinking.type: {kind!r} is not one of enabled, adaptive, disabled",
                             param="thinking.type", code="invalid_value")
        return None
    budget = thinking.get("budget_tokens") if thinking else None
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise BadRequest("thinking.budget_tokens: a positive integer is required", param="thinking.budget_tokens",
                         code="invalid_value")
    return "low" if budget <= 1024 else "medium" if budget <= 2048 else "high"


def parse_count_tokens_request(body: bytes) -> ChatRequest:
    wire: w.WireCountTokensRequest = _decode(_count_decoder, body)
    return ChatRequest(model=wire.model, messages=messages_of(wire.system, wire.messages), tools=tools_of(wire.tools))


def messages_of(system: str | list[w.TextBlock] | None, turns: list[w.WireMessage]) -> list[Message]:
    if not turns:
        raise BadRequest("messages: at least one message is required", param="messages", code="invalid_value")
    out: list[Message] = []
    if system:
        text = system if isinstance(system, str) else "".join(b.text for b in system)
        out.append(Message("system", text))
    for i, turn in enumerate(turns):
        if isinstance(turn.content, str):
            out.append(Message(turn.role, turn.content))
        elif turn.role == "user":
            out.extend(_user_turn(i, turn.content))
        else:
            out.append(_assistant_turn(i, turn.content))
    return out


def _image(block: w.ImageBlock) -> ImagePart:
    src = block.source
    if isinstance(src, w.UrlSource):
        return ImagePart(src.url)
    return ImagePart(f"data:{src.media_type};base64,{src.data}")


def _user_turn(i: int, blocks: list[w.Block]) -> list[Message]:
    """Tool results first (each its own tool message, in order), then the turn's text and images."""
    out: list[Message] = []
    parts: list[Part] = []
    for j, b in enumerate(blocks):
        if isinstance(b, w.TextBlock):
            parts.append(TextPart(b.text))
        elif isinstance(b, w.ImageBlock):
            parts.append(_image(b))
        elif isinstance(b, w.ToolResultBlock):
            out.append(Message("tool", _result_content(b), tool_call_id=b.tool_use_id))
        else:
            where = f"messages.{i}.content.{j}"
            raise BadRequest(f"{where}: a user message cannot hold a {_kind(b)} block", param=where,
                             code="invalid_value")
    if parts:
        out.append(Message("user", parts[0].text if len(parts) == 1 and isinstance(parts[0], TextPart) else parts))
    return out


def _result_content(b: w.ToolResultBlock) -> str | list[Part]:
    c = b.content
    text: str | list[Part]
    if c is None:
        text = ""
    elif isinstance(c, str):
        text = c
    else:
        parts: list[Part] = [TextPart(x.text) if isinstance(x, w.TextBlock) else _image(x) for x in c]
        text = "".join(p.text for p in parts if isinstance(p, TextPart)) if all(
            isinstance(p, TextPart) for p in parts) else parts
    if b.is_error and isinstance(text, str):
        text = f"Error: {text}"  # the canonical tool message has no error flag: the model reads it
    return text


def _assistant_turn(i: int, blocks: list[w.Block]) -> Message:
    texts: list[str] = []
    calls: list[ToolCall] = []
    reasoning: list[str] = []
    for j, b in enumerate(blocks):
        if isinstance(b, w.TextBlock):
            texts.append(b.text)
        elif isinstance(b, w.ToolUseBlock):
            calls.append(ToolCall(b.id, b.name, _encode(b.input).decode()))
        elif isinstance(b, w.ThinkingBlock):
            reasoning.append(b.thinking)
        elif isinstance(b, w.RedactedThinkingBlock):
            continue  # encrypted for Anthropic's own models: nothing another model can read
        else:
            where = f"messages.{i}.content.{j}"
            raise BadRequest(f"{where}: an assistant message cannot hold a {_kind(b)} block", param=where,
                             code="invalid_value")
    return Message("assistant", "".join(texts) if texts else None, tool_calls=calls or None,
                   reasoning="".join(reasoning) or None)


def _kind(b: Any) -> str:
    return str(type(b).__struct_config__.tag)


def tools_of(tools: list[w.WireTool] | None) -> list[Tool] | None:
    if not tools:
        return None
    out = []
    for i, t in enumerate(tools):
        if t.type not in (None, "custom"):
            raise BadRequest(f"tools.{i}: server tool {t.type!r} is not available through this gateway",
                             param=f"tools.{i}.type", code="invalid_value")
        out.append(Tool(t.name, t.description, t.input_schema))
    return out


def tool_choice_of(choice: dict[str, Any] | None) -> str | dict[str, Any] | None:
    if choice is None:
        return None
    kind = choice.get("type")
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"name": choice["name"]}
    raise BadRequest("tool_choice: type must be auto, any, none or tool (with a name)", param="tool_choice",
                     code="invalid_value")


# ---- outbound: a whole answer --------------------------------------------------------------------


def content_blocks(m: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if m.reasoning:
        blocks.append({"type": "thinking", "thinking": m.reasoning, "signature": ""})
    text = m.text()
    if text:
        blocks.append({"type": "text", "text": text})
    for c in m.tool_calls or ():
        blocks.append({"type": "tool_use", "id": c.id, "name": c.name, "input": tool_input(c.arguments)})
    return blocks


def tool_input(arguments: str) -> Any:
    """A tool call's arguments as the JSON object Anthropic carries (a model's broken JSON: as a string)."""
    try:
        return msgspec.json.decode(arguments) if arguments else {}
    except DECODE_ERRORS:
        return {"_raw": arguments}


def encode_message_response(resp: ChatResponse, model: str) -> bytes:
    u = resp.usage
    return _encode({
        "id": message_id(), "type": "message", "role": "assistant", "model": model,
        "content": content_blocks(resp.message), "stop_reason": stop_reason(resp.finish_reason),
        "stop_sequence": None,
        "usage": usage_json(u),
    })


def usage_json(u: Usage | None) -> dict[str, int]:
    """Anthropic's usage: input_tokens leaves out what the prompt cache held (cache_read_input_tokens)."""
    if u is None:
        return {"input_tokens": 0, "output_tokens": 0}
    out = {"input_tokens": u.prompt_tokens - u.cached_tokens, "output_tokens": u.completion_tokens}
    if u.cached_tokens:
        out["cache_read_input_tokens"] = u.cached_tokens
    return out


def encode_count(tokens: int) -> bytes:
    return _encode({"input_tokens": tokens})
