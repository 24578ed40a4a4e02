"""Canonical -> Anthropic's Messages API, for `type: anthropic` services (the provider is
providers/anthropic.py), and Anthropic's answers and SSE events -> canonical.

Request: system (and developer) messages join into `system`; tool results become `tool_result`
blocks of a user turn; turns of one role in a row merge (the API wants them alternating);
images as base64 or url sources; `max_tokens` is required by the API: the request's, else the
service's default. A temperature above 1 (OpenAI takes up to 2) and a JSON mode (`response_format`:
the API has none) are refused with a 400 that names them. Reasoning the client sends back is left
out: Anthropic only takes its own signed thinking."""

from __future__ import annotations

from typing import Any

import msgspec

from clawdbot.codecs.anthropic_wire import Usage as WireUsage
from clawdbot.codecs.decoding import DECODE_ERRORS
from clawdbot.core.errors import BadRequest, UpstreamError
from clawdbot.core.types import (
    UNCARRIED,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)

DEFAULT_MAX_TOKENS = 4096
# reasoning_effort -> Anthropic's thinking budget (tokens; its minimum is 1024)
THINKING_BUDGETS = {"low": 1024, "medium": 2048, "high": 4096}
VERSION = "2023-06-01"  # the anthropic-version header
_encode = msgspec.json.Encoder().encode

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "refusal": "content_filter", "pause_turn": "stop"}


def _image(p: ImagePart) -> dict[str, Any]:
    if p.url.startswith("data:"):
        head, _, data = p.url.partition(",")
        media = head[5:].split(";")[0] or "image/png"
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": p.url}}


def _blocks(m: Message) -> list[dict[str, Any]]:
    c = m.content
    if c is None:
        return []
    if isinstance(c, str):
        return [{"type": "text", "text": c}] if c else []
    # the API refuses an empty text block, in a list of parts as in a plain string
    return [{"type": "text", "text": p.text} if isinstance(p, TextPart) else _image(p) for p in c
            if not isinstance(p, TextPart) or p.text]


def _arguments(text: str) -> Any:
    try:
        return msgspec.json.decode(text) if text else {}
    except DECODE_ERRORS:
        raise BadRequest("a tool call's arguments are not JSON; Anthropic takes them as an object",
                         param="messages", code="invalid_value") from None


def encode_request(req: ChatRequest, model: str, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> bytes:
    if req.temperature is not None and req.temperature > 1.0:
        raise BadRequest(f"temperature: {req.temperature} is above 1, the most this model's service takes",
                         param="temperature", code="invalid_value")
    json_mode = (req.response_format or {}).get("type")
    if json_mode in ("json_object", "json_schema"):  # sent without it, the answer would not be JSON
        raise BadRequest(f"'response_format: {json_mode}' cannot be honoured by an Anthropic service (the Messages "
                         f"API has no JSON mode).", param="response_format", code="unsupported_parameter")
    system: list[str] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            content = turns[-1]["content"]
            # A user turn's tool_result blocks come before its other blocks, or the API refuses it
            at = next((i for i, b in enumerate(content) if b["type"] != "tool_result"), len(content)) \
                if blocks[0]["type"] == "tool_result" else len(content)
            content[at:at] = blocks
        else:
            turns.append({"role": role, "content": blocks})

    for m in req.messages:
        if m.role in ("system", "developer"):
            system.append(m.text())
        elif m.role == "tool":
            add("user", [{"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": _blocks(m)}])
        elif m.role == "assistant":
            blocks = _blocks(m) + [{"type": "tool_use", "id": c.id, "name": c.name, "input": _arguments(c.arguments)}
                                   for c in m.tool_calls or ()]
            add("assistant", blocks)
        else:
            add("user", _blocks(m))
    body: dict[str, Any] = {"model": model, "messages": turns,
                            "max_tokens": req.max_tokens or default_max_tokens}
    if system:
        body["system"] = "\n\n".join(system)
    if req.stream:
        body["stream"] = True
    for name, value in (("temperature", req.temperature), ("top_p", req.top_p), ("stop_sequences", req.stop)):
        if value is not None:
            body[name] = value
    if req.tools and req.tool_choice != "none":
        body["tools"] = [{"name": t.name, "description": t.description or "",
                          "input_schema": t.parameters or {"type": "object", "properties": {}}} for t in req.tools]
        choice = req.tool_choice
        if choice == "required":
            body["tool_choice"] = {"type": "any"}
        elif isinstance(choice, dict):
            body["tool_choice"] = {"type": "tool", "name": choice.get("name")}
    extra = req.extra or {}
    if isinstance(extra.get("top_k"), int):
        body["top_k"] = extra["top_k"]
    for name in UNCARRIED:
        if extra.get(name):
            raise BadRequest(f"'{name}' cannot be honoured by an Anthropic service.", param=name,
                             code="unsupported_parameter")
    if extra.get("parallel_tool_calls") is False and "tools" in body:
        body["tool_choice"] = {**body.get("tool_choice", {"type": "auto"}), "disable_parallel_tool_use": True}
    effort = extra.get("reasoning_effort")
    if isinstance(effort, str) and effort not in ("none", "minimal"):
        budget = req.reasoning_budget or THINKING_BUDGETS.get(effort, THINKING_BUDGETS["medium"])
        if body["max_tokens"] <= budget and req.reasoning_budget:
            raise BadRequest(f"thinking.budget_tokens: {budget} must be below max_tokens ({body['max_tokens']})",
                             param="thinking.budget_tokens", code="invalid_value")
        if body["max_tokens"] <= budget:
            raise BadRequest(f"'reasoning_effort: {effort}' needs max_tokens above {budget} on an Anthropic "
                             f"service (its thinking budget).", param="reasoning_effort", code="invalid_value")
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if req.user:
        body["metadata"] = {"user_id": req.user}
    return _encode(body)


# ---- Anthropic -> canonical ---------------------------------------------------------------------


class _Block(msgspec.Struct):
    type: str
    text: str | None = None
    thinking: str | None = None
    id: str | None = None
    name: str | None = None
    input: Any = None


class _Message(msgspec.Struct):
    id: str = ""
    model: str = ""
    content: list[_Block] = []
    stop_reason: str | None = None
    usage: WireUsage | None = None


_message = msgspec.json.Decoder(_Message)


def _bad(what: str, exc: Exception) -> UpstreamError:
    return UpstreamError(f"upstream sent an invalid {what}: {str(exc)[:160]}")


def decode_response(body: bytes) -> ChatResponse:
    try:
        r = _message.decode(body)
    except DECODE_ERRORS as exc:
        raise _bad("message", exc) from None
    texts = [b.text or "" for b in r.content if b.type == "text"]
    thinking = [b.thinking or "" for b in r.content if b.type == "thinking"]
    calls = [ToolCall(b.id or "", b.name or "", _encode(b.input if b.input is not None else {}).decode())
             for b in r.content if b.type == "tool_use"]
    msg = Message("assistant", "".join(texts) if texts else None, tool_calls=calls or None,
                  reasoning="".join(thinking) or None)
    u = r.usage
    return ChatResponse(r.id, r.model, 0, msg, FINISH.get(r.stop_reason or "end_turn", "stop"),
                        Usage(u.prompt(), u.output_tokens, u.cache_read_input_tokens or 0) if u else None)


class _Delta(msgspec.Struct):
    type: str | None = None
    text: str | None = None
    thinking: str | None = None
    partial_json: str | None = None
    stop_reason: str | None = None


class _ErrorDetail(msgspec.Struct):
    type: str = ""
    message: str = ""


class _Event(msgspec.Struct):
    type: str
    index: int = 0
    message: _Message | None = None
    content_block: _Block | None = None
    delta: _Delta | None = None
    usage: WireUsage | None = None
    error: _ErrorDetail | None = None


_event = msgspec.json.Decoder(_Event)


class StreamDecoder:
    """Anthropic's SSE `data:` payloads -> canonical chunks. Block indexes of tool_use blocks
    become tool-call indexes 0, 1, ...; `message_stop` ends the stream (None from `decode`)."""

    def __init__(self) -> None:
        self.prompt = 0
        self.cached = 0
        self.calls: dict[int, int] = {}  # block index -> tool-call index
        self.done = False

    def decode(self, data: bytes) -> ChatChunk | None:
        try:
            ev = _event.decode(data)
        except DECODE_ERRORS as exc:
            raise _bad("stream event", exc) from None
        kind = ev.type
        if kind == "message_start" and ev.message is not None:
            if ev.message.usage is not None:
                self.prompt = ev.message.usage.prompt()
                self.cached = ev.message.usage.cache_read_input_tokens or 0
            return ChatChunk(role="assistant", model=ev.message.model or None)
        if kind == "content_block_start" and ev.content_block is not None and ev.content_block.type == "tool_use":
            i = self.calls[ev.index] = len(self.calls)
            b = ev.content_block
            return ChatChunk(tool_calls=[ToolCallDelta(i, b.id, b.name, "")])
        if kind == "content_block_delta" and ev.delta is not None:
            d = ev.delta
            if d.type == "text_delta" and d.text:
                return ChatChunk(content=d.text)
            if d.type == "thinking_delta" and d.thinking:
                return ChatChunk(reasoning=d.thinking)
            if d.type == "input_json_delta" and d.partial_json and ev.index in self.calls:
                return ChatChunk(tool_calls=[ToolCallDelta(self.calls[ev.index], arguments=d.partial_json)])
            return ChatChunk()
        if kind == "message_delta":
            finish = FINISH.get(ev.delta.stop_reason or "end_turn", "stop") if ev.delta else "stop"
            out = ev.usage.output_tokens if ev.usage else 0
            u = ev.usage
            # a prompt all read from the cache is input_tokens 0 with cache_read_input_tokens
            prompt, cached = (u.prompt(), u.cache_read_input_tokens or 0) if u and u.prompt() else \
                (self.prompt, self.cached)
            return ChatChunk(finish_reason=finish, usage=Usage(prompt, out, cached))
        if kind == "message_stop":
            self.done = True
            return None
        if kind == "error":
            err = ev.error or _ErrorDetail()
            raise UpstreamError(f"upstream stream error ({err.type or 'unknown'}): {err.message[:200]}",
                                upstream_status=529 if err.type == "overloaded_error" else None)
        return ChatChunk()  # ping, content_block_stop: nothing for the client


def decode_models(body: bytes) -> list[str]:
    try:
        data = msgspec.json.decode(body)
    except DECODE_ERRORS as exc:
        raise _bad("model list", exc) from None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):  # Anthropic's GET /v1/models: {"data": [{"id": ...}, ...], "has_more": ...}
        raise _bad("model list", ValueError("expected an object with a `data` array"))
    return [m["id"] for m in items if isinstance(m, dict) and isinstance(m.get("id"), str)]
