"""Ollama's /api/chat dialect <-> canonical chat types. Pure functions, no I/O.

Wire reference: ollama/ollama docs/api.md and api/types.go. Requests carry sampling settings in an
`options` object, images as bare base64 strings, and tool-call arguments as a JSON object (not JSON
text as in OpenAI). Streams are NDJSON: one object per line, the last with `done: true`, the finish
reason and the token counts.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime
from typing import Any

import msgspec

from clawdbot.codecs.decoding import DECODE_ERRORS
from clawdbot.core.errors import BadRequest, GatewayError, UpstreamError
from clawdbot.core.types import (
    UNCARRIED,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    Part,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)

# --- wire types (decoding only: typed Structs validate once, at the edge) ---------------------------


class _Function(msgspec.Struct):
    name: str = ""
    # An object on the real wire; text is tolerated because some Ollama look-alikes send it.
    arguments: dict[str, Any] | str | None = None
    index: int | None = None


class _ToolCall(msgspec.Struct):
    function: _Function
    id: str | None = None  # newer Ollama versions send one


class _Message(msgspec.Struct):
    role: str = "assistant"
    content: str = ""
    thinking: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Reply(msgspec.Struct):
    """One /api/chat object: a whole reply, a stream line, or an error line."""

    model: str = ""
    created_at: str | None = None
    message: _Message | None = None
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int = 0
    eval_count: int = 0
    error: Any = None


_DECODER = msgspec.json.Decoder(_Reply)
_ENCODER = msgspec.json.Encoder()

# Ollama knows four roles; OpenAI's "developer" is its system prompt under a newer name.
_ROLES = {"developer": "system"}
# done_reason -> canonical finish_reason. load/unload answer an empty request (model warm-up).
_FINISH = {"stop": "stop", "length": "length", "load": "stop", "unload": "stop"}
# canonical finish_reason -> done_reason. Ollama reports a tool-call turn as an ordinary "stop".
_DONE = {"length": "length"}
_LAST_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z: the last time RFC 3339 (and Go's parser) can write


# --- canonical -> Ollama request ------------------------------------------------------------------


def encode_chat_request(req: ChatRequest, model: str, num_ctx: int | None) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": _messages(req.messages), "stream": req.stream}
    fmt = _format(req.response_format)
    if fmt is not None:
        body["format"] = fmt
    # Ollama has no tool_choice; "none" is honoured by not offering the tools at all.
    if req.tools and req.tool_choice != "none":
        body["tools"] = [_tool(t) for t in req.tools]
    extra = req.extra or {}
    for name in UNCARRIED:
        if extra.get(name):
            raise BadRequest(f"'{name}' cannot be honoured by an Ollama service.", param=name,
                             code="unsupported_parameter")
    if extra.get("parallel_tool_calls") is False and req.tools:
        raise BadRequest("'parallel_tool_calls: false' cannot be honoured by an Ollama service.",
                         param="parallel_tool_calls", code="unsupported_parameter")
    think = _think(extra)
    if think is not None:
        body["think"] = think
    if isinstance(extra.get("keep_alive"), str | int | float):  # "5m", or seconds (Ollama takes 1.5)
        body["keep_alive"] = extra["keep_alive"]
    options = _options(req, num_ctx, extra)
    if options:
        body["options"] = options
    return _ENCODER.encode(body)


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    # Ollama names a tool result by the tool's name, not by a call id: remember which id was which.
    names: dict[str, str] = {}
    out = []
    for m in messages:
        for call in m.tool_calls or ():
            names[call.id] = call.name
        out.append(_message(m, names))
    return out


def _message(m: Message, names: dict[str, str]) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": _ROLES.get(m.role, m.role), "content": m.text()}
    if m.reasoning:
        wire["thinking"] = m.reasoning
    images = _images(m.content)
    if images:
        wire["images"] = images
    if m.tool_calls:
        wire["tool_calls"] = [_wire_call(c.name, c.arguments, BadRequest) for c in m.tool_calls]
    if m.role == "tool":
        tool_name = m.name or names.get(m.tool_call_id or "")
        if tool_name:
            wire["tool_name"] = tool_name
    return wire


def _images(content: str | list[Part] | None) -> list[str]:
    if not isinstance(content, list):
        return []
    return [_image_base64(p.url) for p in content if isinstance(p, ImagePart)]


def _image_base64(url: str) -> str:
    if not url.startswith("data:"):
        raise BadRequest(
            "Ollama needs the image bytes: send images as data: URLs (base64), not links",
            param="messages",
            code="image_url_unsupported",
        )
    header, sep, data = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise BadRequest("an image data: URL must be base64 encoded", param="messages")
    return data


def _wire_call(name: str, arguments: str, error: type[GatewayError], index: int = 0) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name, "arguments": _arguments_object(arguments, error)}
    if index:
        function = {"index": index, **function}
    return {"function": function}


def _arguments_object(text: str, error: type[GatewayError]) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = msgspec.json.decode(text)
    except DECODE_ERRORS:
        value = None
    if not isinstance(value, dict):
        raise error(f"tool call arguments must be a JSON object for Ollama, got {text[:80]!r}")
    return value


def _format(response_format: dict[str, Any] | None) -> str | dict[str, Any] | None:
    # Ollama's `format` is "json" or the JSON schema itself (OpenAI wraps it with a name and strict).
    kind = (response_format or {}).get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = (response_format or {}).get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return schema if isinstance(schema, dict) else "json"
    return None


def _tool(t: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": t.name}
    if t.description is not None:
        function["description"] = t.description
    function["parameters"] = t.parameters or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def _think(extra: dict[str, Any]) -> bool | str | None:
    think = extra.get("think")  # an Ollama-dialect client's own value: true, false or "low".."high"
    if isinstance(think, bool | str):
        return think
    effort = extra.get("reasoning_effort")
    # Effort levels are a string only gpt-oss accepts (others reject it), so say on/off.
    if isinstance(effort, str):
        return effort != "none"
    return None


def _options(req: ChatRequest, num_ctx: int | None, extra: dict[str, Any]) -> dict[str, Any]:
    passed = extra.get("options")
    options: dict[str, Any] = dict(passed) if isinstance(passed, dict) else {}
    pairs = (
        ("temperature", req.temperature),
        ("top_p", req.top_p),
        ("num_predict", req.max_tokens),
        ("num_ctx", num_ctx),
        ("stop", req.stop),
        ("seed", req.seed),
        ("frequency_penalty", req.frequency_penalty),
        ("presence_penalty", req.presence_penalty),
    )
    options.update((k, v) for k, v in pairs if v is not None)
    return options


# --- Ollama reply -> canonical ------------------------------------------------------------------


def decode_chat_response(body: bytes) -> ChatResponse:
    reply = _decode(body)
    msg = reply.message or _Message()
    calls = [
        ToolCall(id=c.id or _call_id(), name=c.function.name, arguments=_arguments_text(c.function.arguments))
        for c in msg.tool_calls or ()
    ]
    return ChatResponse(
        id=f"chatcmpl-{secrets.token_hex(12)}",
        model=reply.model,
        created=_unix(reply.created_at),
        message=Message(
            role="assistant",
            content=msg.content if msg.content or not calls else None,
            tool_calls=calls or None,
            reasoning=msg.thinking or None,
        ),
        finish_reason=finish_reason(reply.done_reason, bool(calls)),
        usage=Usage(prompt_tokens=reply.prompt_eval_count, completion_tokens=reply.eval_count),
    )


def decode_stream_line(line: bytes) -> ChatChunk | None:
    """One NDJSON line as a canonical chunk; None for a blank line or one that carries nothing.

    Tool-call indexes are those of the line (Ollama sends each call whole); a caller that merges a
    stream renumbers them in arrival order."""
    if not line.strip():
        return None
    reply = _decode(line)
    msg = reply.message or _Message()
    deltas = [
        ToolCallDelta(
            index=i if c.function.index is None else c.function.index,
            id=c.id or _call_id(),
            name=c.function.name,
            arguments=_arguments_text(c.function.arguments),
        )
        for i, c in enumerate(msg.tool_calls or ())
    ]
    chunk = ChatChunk(
        content=msg.content or None,
        reasoning=msg.thinking or None,
        tool_calls=deltas or None,
        model=reply.model or None,
    )
    if reply.done:
        chunk.finish_reason = finish_reason(reply.done_reason, bool(deltas))
        chunk.usage = Usage(prompt_tokens=reply.prompt_eval_count, completion_tokens=reply.eval_count)
    elif chunk.content is None and chunk.reasoning is None and chunk.tool_calls is None:
        return None
    return chunk


def finish_reason(done_reason: str | None, tool_calls: bool) -> str:
    """The canonical finish reason; `tool_calls` says whether the turn produced any."""
    if tool_calls:
        return "tool_calls"
    return _FINISH.get(done_reason or "stop", "stop")


def _decode(data: bytes) -> _Reply:
    try:
        reply = _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        raise UpstreamError(f"Ollama sent JSON that is not a chat reply ({exc}): {_snippet(data)}") from exc
    except DECODE_ERRORS as exc:
        raise UpstreamError(f"Ollama sent a line that is not valid JSON: {_snippet(data)}") from exc
    if reply.error is not None:
        text = reply.error if isinstance(reply.error, str) else _ENCODER.encode(reply.error).decode()
        raise UpstreamError(f"Ollama error: {text[:300]}")
    return reply


def _snippet(data: bytes) -> str:
    return repr(data[:80].decode("utf-8", "replace")) + ("..." if len(data) > 80 else "")


def _arguments_text(arguments: dict[str, Any] | str | None) -> str:
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        return arguments
    return _ENCODER.encode(arguments).decode()


def _call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def _unix(created_at: str | None) -> int:
    if created_at:
        try:
            return int(datetime.fromisoformat(created_at).timestamp())
        except (ValueError, OverflowError, OSError):  # not ISO 8601, or a year the platform cannot place
            pass
    return int(time.time())


# --- canonical -> Ollama reply (for an Ollama-dialect inbound API) -------------------------------


def encode_chat_response(resp: ChatResponse) -> bytes:
    body: dict[str, Any] = {
        "model": resp.model,
        "created_at": rfc3339(resp.created * 1_000_000_000),
        "message": _reply_message(resp.message.text(), resp.message.reasoning, _calls(resp.message)),
        "done_reason": _DONE.get(resp.finish_reason or "stop", "stop"),
        "done": True,
    }
    body.update(_metrics(resp.usage))
    return _ENCODER.encode(body)


def encode_stream_chunk(chunk: ChatChunk, model: str, created_at: str | None = None) -> bytes:
    """One NDJSON line (newline included). Tool calls must be whole: Ollama sends each call complete
    in one line, so a caller relaying an OpenAI-style delta stream merges the deltas first."""
    calls = [
        _wire_call(d.name or "", d.arguments or "", UpstreamError, d.index) for d in chunk.tool_calls or ()
    ]
    body: dict[str, Any] = {
        "model": model,
        "created_at": created_at or rfc3339(time.time_ns()),
        "message": _reply_message(chunk.content or "", chunk.reasoning, calls),
    }
    if chunk.finish_reason is None:
        body["done"] = False
    else:
        body["done_reason"] = _DONE.get(chunk.finish_reason, "stop")
        body["done"] = True
        body.update(_metrics(chunk.usage))
    return _ENCODER.encode(body) + b"\n"


def _calls(m: Message) -> list[dict[str, Any]]:
    return [_wire_call(c.name, c.arguments, UpstreamError) for c in m.tool_calls or ()]


def _reply_message(content: str, thinking: str | None, calls: list[dict[str, Any]]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    if calls:
        message["tool_calls"] = calls
    return message


def _metrics(usage: Usage | None) -> dict[str, int]:
    # Ollama omits zero counts (Go omitempty); durations are unknown here and omitted the same way.
    if usage is None:
        return {}
    counts = {"prompt_eval_count": usage.prompt_tokens, "eval_count": usage.completion_tokens}
    return {k: v for k, v in counts.items() if v}


def rfc3339(unix_ns: int) -> str:
    """Go's time.RFC3339Nano in UTC, as Ollama writes created_at: trailing zeros of the fraction cut."""
    seconds, nanos = divmod(unix_ns, 1_000_000_000)
    if not 0 <= seconds <= _LAST_SECOND:  # an upstream's `created` before 1970 or past RFC 3339's year 9999
        seconds, nanos = min(max(seconds, 0), _LAST_SECOND), 0
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return stamp + (f".{nanos:09d}".rstrip("0") if nanos else "") + "Z"
