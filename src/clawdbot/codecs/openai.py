"""OpenAI chat dialect <-> canonical. Pure functions: the inbound /v1 API and the OpenAI-compatible
provider both use them."""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Callable
from typing import Any

import msgspec

from clawdbot.codecs import openai_wire as w
from clawdbot.codecs.decoding import DECODE_ERRORS
from clawdbot.codecs.openai_legacy import legacy_answer, legacy_events, legacy_tools
from clawdbot.codecs.tool_ids import Calls
from clawdbot.core.errors import BadRequest, GatewayError, UpstreamError
from clawdbot.core.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ImagePart,
    Message,
    Part,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)

SSE_TYPE = b"text/event-stream; charset=utf-8"
_json_encode = msgspec.json.Encoder().encode
_chat_decoder = msgspec.json.Decoder(w.WireChatRequest)
_embed_decoder = msgspec.json.Decoder(w.WireEmbeddingRequest)
_at_re = re.compile(r"^(?P<msg>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?$", re.S)


# ---- inbound: client request bytes -> canonical -------------------------------------------------


def decode_error(exc: msgspec.DecodeError | UnicodeError | RecursionError) -> BadRequest:
    """A msgspec error as a 400 that names the field."""
    if isinstance(exc, UnicodeError):
        return BadRequest("The request body is not valid UTF-8.", code="invalid_encoding")
    if isinstance(exc, RecursionError):  # only a body that skipped codecs/bounds.py's check gets here
        return BadRequest("The JSON body is nested too deeply.", code="json_too_deep")
    m = _at_re.match(str(exc))
    msg = m.group("msg") if m else str(exc)
    path = (m.group("path") if m else None) or None
    if isinstance(exc, msgspec.ValidationError):
        missing = re.search(r"missing required field `([^`]+)`", msg)
        if missing:
            path = f"{path}.{missing.group(1)}" if path else missing.group(1)
            return BadRequest(f"Missing required parameter: '{path}'.", param=path, code="missing_required_parameter")
        unknown = re.search(r"unknown field `([^`]+)`", msg)
        if unknown:
            path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
            return BadRequest(f"Unrecognized request argument supplied: {path}", param=path,
                              code="unknown_parameter")
        where = f" at '{path}'" if path else ""
        return BadRequest(f"Invalid value{where}: {msg}", param=path, code="invalid_type")
    if "UTF-8" in msg or "utf-8" in msg:
        return BadRequest("The request body is not valid UTF-8.", code="invalid_encoding")
    return BadRequest(f"We could not parse the JSON body of your request ({msg}).", code="invalid_json")


def parse_chat_request(body: bytes) -> tuple[w.WireChatRequest, ChatRequest]:
    try:
        wire = _chat_decoder.decode(body)
    except DECODE_ERRORS as exc:
        raise decode_error(exc) from None
    return wire, to_canonical(wire)


def _check_range(name: str, value: float | None, lo: float, hi: float) -> None:
    if value is not None and not lo <= value <= hi:
        raise BadRequest(f"Invalid '{name}': {value} is outside [{lo}, {hi}].", param=name, code="invalid_value")


def to_canonical(wire: w.WireChatRequest) -> ChatRequest:
    if not wire.messages:
        raise BadRequest("'messages' must contain at least one message.", param="messages", code="invalid_value")
    if wire.n not in (None, 1):
        raise BadRequest("Only n=1 is supported.", param="n", code="invalid_value")
    if not wire.model:
        raise BadRequest("'model' must not be empty.", param="model", code="invalid_value")
    _check_range("temperature", wire.temperature, 0.0, 2.0)
    _check_range("top_p", wire.top_p, 0.0, 1.0)
    _check_range("frequency_penalty", wire.frequency_penalty, -2.0, 2.0)
    _check_range("presence_penalty", wire.presence_penalty, -2.0, 2.0)
    max_tokens = wire.max_completion_tokens if wire.max_completion_tokens is not None else wire.max_tokens
    if max_tokens is not None and max_tokens < 1:
        name = "max_completion_tokens" if wire.max_completion_tokens is not None else "max_tokens"
        raise BadRequest(f"Invalid '{name}': must be at least 1.", param=name, code="invalid_value")
    stop = [wire.stop] if isinstance(wire.stop, str) else wire.stop
    if stop is not None and len(stop) > 4:
        raise BadRequest("'stop' takes at most 4 sequences.", param="stop", code="invalid_value")
    calls = Calls()
    messages = [_message(i, m, calls) for i, m in enumerate(wire.messages)]
    tools = [Tool(t.function.name, t.function.description, t.function.parameters, t.function.strict)
             for t in wire.tools] if wire.tools else None
    tool_choice = wire.tool_choice
    legacy = wire.functions is not None or wire.function_call is not None
    if legacy:
        tools, tool_choice = legacy_tools(wire)
    if isinstance(tool_choice, dict):
        fn = tool_choice.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise BadRequest("'tool_choice' object needs function.name.", param="tool_choice", code="invalid_value")
        tool_choice = {"name": fn["name"]}
    elif tool_choice is not None and tool_choice not in ("auto", "none", "required"):
        raise BadRequest(f"Invalid 'tool_choice': {tool_choice!r}.", param="tool_choice", code="invalid_value")
    if wire.response_format is not None and wire.response_format.get("type") not in (
        "text", "json_object", "json_schema"
    ):
        raise BadRequest("Invalid 'response_format.type'.", param="response_format.type", code="invalid_value")
    # Options no canonical field holds: kept for the upstream's encoder, which passes each on, maps
    # it, or refuses it by name (docs/dialects.md, "Options without a canonical field").
    extra = {k: v for k, v in (("logit_bias", wire.logit_bias), ("parallel_tool_calls", wire.parallel_tool_calls),
                                ("reasoning_effort", wire.reasoning_effort), ("logprobs", wire.logprobs or None),
                                ("top_logprobs", wire.top_logprobs)) if v is not None}
    return ChatRequest(
        model=wire.model,
        messages=messages,
        stream=bool(wire.stream),
        tools=tools,
        tool_choice=tool_choice,
        extra=extra or None,
        response_format=wire.response_format,
        temperature=wire.temperature,
        top_p=wire.top_p,
        max_tokens=max_tokens,
        stop=stop,
        seed=wire.seed,
        include_usage=bool(wire.stream_options and wire.stream_options.include_usage),
        frequency_penalty=wire.frequency_penalty,
        presence_penalty=wire.presence_penalty,
        user=wire.user,
        limit_field=("max_completion_tokens" if wire.max_completion_tokens is not None
                     else "max_tokens" if wire.max_tokens is not None else None),
        legacy_functions=legacy,
    )


def _message(i: int, m: w.WireMessage, calls: Calls) -> Message:
    content: str | list[Part] | None
    if isinstance(m.content, list):
        content = [
            TextPart(p.text) if isinstance(p, w.WireTextPart) else ImagePart(p.image_url.url, p.image_url.detail)
            for p in m.content
        ]
    else:
        content = m.content
    if m.role == "tool" and not m.tool_call_id:
        raise BadRequest(f"messages[{i}]: a tool message needs 'tool_call_id'.",
                         param=f"messages[{i}].tool_call_id", code="missing_required_parameter")
    if content is None and m.role != "assistant":
        raise BadRequest(f"messages[{i}]: 'content' is required for role {m.role!r}.",
                         param=f"messages[{i}].content", code="missing_required_parameter")
    made = [ToolCall(c.id, c.function.name, c.function.arguments) for c in m.tool_calls] if m.tool_calls else None
    if m.function_call is not None and m.role == "assistant":  # legacy: one call, no id (made up)
        made = [*(made or ()), ToolCall(f"call_{i}_0", m.function_call.name, m.function_call.arguments)]
    if made:
        calls.turn([(c.name, c.id) for c in made])
    if m.role == "function":  # legacy: a result that names its function, not a call (codecs/tool_ids.py)
        if not m.name:
            raise BadRequest(f"messages[{i}]: a function message needs 'name'.", param=f"messages[{i}].name",
                             code="missing_required_parameter")
        return Message("tool", content, m.name, None, m.tool_call_id or calls.answer(i, m.name))
    return Message(m.role, content, m.name, made, m.tool_call_id, m.reasoning_content)


def parse_embedding_request(body: bytes) -> EmbeddingRequest:
    try:
        wire = _embed_decoder.decode(body)
    except DECODE_ERRORS as exc:
        raise decode_error(exc) from None
    if not wire.model:  # as the chat parser and the metered head reader (api/metered.py) say
        raise BadRequest("'model' must not be empty.", param="model", code="invalid_value")
    inp = wire.input
    if isinstance(inp, str):
        texts = [inp]
    elif all(isinstance(x, str) for x in inp):
        texts = [str(x) for x in inp]
    else:
        raise BadRequest("Token-array input is not supported; send strings.", param="input", code="invalid_value")
    if not texts:
        raise BadRequest("'input' must not be empty.", param="input", code="invalid_value")
    return EmbeddingRequest(wire.model, texts, wire.dimensions, wire.encoding_format, wire.user)


# ---- canonical -> OpenAI wire (requests to OpenAI-compatible upstreams) -------------------------


def _part_json(p: Part) -> dict[str, Any]:
    if isinstance(p, TextPart):
        return {"type": "text", "text": p.text}
    url: dict[str, Any] = {"url": p.url}
    if p.detail:
        url["detail"] = p.detail
    return {"type": "image_url", "image_url": url}


def _tool_call_json(c: ToolCall) -> dict[str, Any]:
    return {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}


def message_json(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role}
    out["content"] = [_part_json(p) for p in m.content] if isinstance(m.content, list) else m.content
    if m.name:
        out["name"] = m.name
    if m.tool_calls:
        out["tool_calls"] = [_tool_call_json(c) for c in m.tool_calls]
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


def encode_chat_request(req: ChatRequest, limit_field: str = "max_tokens") -> bytes:
    """`limit_field`: the name the upstream honours for the output limit (config Service.limit_field)."""
    body: dict[str, Any] = {"model": req.model, "messages": [message_json(m) for m in req.messages]}
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # always: the gateway needs the usage
    if req.tools:
        body["tools"] = [{"type": "function", "function": msgspec.structs.asdict(t)} for t in req.tools]
        for t in body["tools"]:
            t["function"] = {k: v for k, v in t["function"].items() if v is not None}
    if isinstance(req.tool_choice, dict):
        body["tool_choice"] = {"type": "function", "function": {"name": req.tool_choice["name"]}}
    elif req.tool_choice is not None:
        body["tool_choice"] = req.tool_choice
    for key in ("response_format", "temperature", "top_p", "stop", "seed", "frequency_penalty",
                "presence_penalty", "user"):
        value = getattr(req, key)
        if value is not None:
            body[key] = value
    if req.max_tokens is not None:
        body[limit_field] = req.max_tokens
    if req.extra:
        body.update(req.extra)
    return _json_encode(body)


def encode_embedding_request(req: EmbeddingRequest) -> bytes:
    body: dict[str, Any] = {"model": req.model, "input": req.input}
    if req.dimensions is not None:
        body["dimensions"] = req.dimensions
    return _json_encode(body)


# ---- OpenAI wire -> canonical (responses from OpenAI-compatible upstreams) ----------------------

_resp_decoder = msgspec.json.Decoder(w.WireChatResponse)
_chunk_decoder = msgspec.json.Decoder(w.WireChunk)
_usage_decoder = msgspec.json.Decoder(w.UsageOnly)
_embed_resp_decoder = msgspec.json.Decoder(w.WireEmbeddingResponse)
_models_decoder = msgspec.json.Decoder(w.WireModelList)


def _usage(u: w.WireUsage | None) -> Usage | None:
    if u is None:
        return None
    p, c = u.prompt_tokens_details, u.completion_tokens_details
    return Usage(u.prompt_tokens, u.completion_tokens, (p.cached_tokens or 0) if p else 0,
                 (c.reasoning_tokens or 0) if c else 0)


def _bad_upstream(what: str, exc: Exception) -> UpstreamError:
    return UpstreamError(f"upstream sent an invalid {what}: {str(exc)[:160]}")


def decode_chat_response(body: bytes) -> ChatResponse:
    try:
        r = _resp_decoder.decode(body)
    except DECODE_ERRORS as exc:
        raise _bad_upstream("chat completion", exc) from None
    if not r.choices:
        raise UpstreamError("upstream sent a chat completion without choices")
    c = r.choices[0]
    calls = [ToolCall(t.id, t.function.name, t.function.arguments) for t in c.message.tool_calls] \
        if c.message.tool_calls else None
    msg = Message("assistant", c.message.content, tool_calls=calls,
                  reasoning=c.message.reasoning_content or c.message.reasoning)
    return ChatResponse(r.id, r.model, r.created, msg, c.finish_reason, _usage(r.usage))


_exact_decoder = msgspec.json.Decoder(w.ExactChatResponse)


def decode_whole(body: bytes) -> tuple[ChatResponse, bool]:
    """An upstream's answer for the plugins, and whether the canonical answer holds all of the
    body's text (one choice, no refusal, logprobs or unknown message fields): then the body itself
    may be relayed when no plugin changed the answer."""
    try:
        r = _exact_decoder.decode(body)
    except DECODE_ERRORS:
        return decode_chat_response(body), False
    m = r.choices[0].message
    calls = [ToolCall(t.id, t.function.name, t.function.arguments) for t in m.tool_calls] if m.tool_calls else None
    msg = Message("assistant", m.content, tool_calls=calls, reasoning=m.reasoning_content or m.reasoning)
    return ChatResponse(r.id, r.model, r.created, msg, r.choices[0].finish_reason, _usage(r.usage)), True


def decode_usage(body: bytes) -> w.UsageOnly | None:
    try:
        return _usage_decoder.decode(body)
    except DECODE_ERRORS:
        return None


def read_answer(body: bytes, service: str) -> tuple[Usage | None, str | None]:
    """A passed-through whole answer's usage and model; UpstreamError when the body is not a chat
    completion."""
    u = decode_usage(body)
    if u is None:
        raise UpstreamError(f"service {service!r} sent a body that is not a chat completion")
    return _usage(u.usage), u.model


_probe_decoder = msgspec.json.Decoder(w.ChunkProbe)
_model_probe_decoder = msgspec.json.Decoder(w.ModelProbe)


def probe_stream_data(data: bytes, service: str | None) -> w.ChunkProbe:
    """Check one passed-through SSE payload is a JSON object and read its usage."""
    try:
        return _probe_decoder.decode(data)  # per event: no frame between the caller and the decoder
    except DECODE_ERRORS as exc:
        raise _malformed_event(service, exc) from None


def probe_stream_model(data: bytes, service: str | None) -> w.ModelProbe:
    """probe_stream_data, also reading the model the event names (until one has: relay.py)."""
    try:
        return _model_probe_decoder.decode(data)
    except DECODE_ERRORS as exc:
        raise _malformed_event(service, exc) from None


def _malformed_event(service: str | None, exc: Exception) -> UpstreamError:
    return UpstreamError(f"service {service!r} sent a malformed stream event: {str(exc)[:120]}")


def decode_stream_data(data: bytes) -> ChatChunk | None:
    """One SSE `data:` payload -> a canonical chunk (None for [DONE])."""
    if data == b"[DONE]":
        return None
    try:
        c = _chunk_decoder.decode(data)
    except DECODE_ERRORS as exc:
        raise _bad_upstream("stream chunk", exc) from None
    if c.error is not None:
        msg = c.error if isinstance(c.error, str) else (c.error.message or "error")
        raise UpstreamError(f"upstream error mid-stream: {msg[:200]}")
    out = ChatChunk(usage=_usage(c.usage), model=c.model)
    if c.choices:
        ch = c.choices[0]
        out.finish_reason = ch.finish_reason
        d = ch.delta
        if d is not None:
            out.role = d.role
            out.content = d.content
            out.reasoning = d.reasoning_content or d.reasoning
            if d.tool_calls:
                out.tool_calls = [
                    ToolCallDelta(t.index, t.id, t.function.name if t.function else None,
                                  t.function.arguments if t.function else None)
                    for t in d.tool_calls
                ]
    return out


def decode_embedding_response(body: bytes) -> EmbeddingResponse:
    try:
        r = _embed_resp_decoder.decode(body)
    except DECODE_ERRORS as exc:
        raise _bad_upstream("embeddings response", exc) from None
    vectors = [d.embedding for d in sorted(r.data, key=lambda d: d.index)]
    return EmbeddingResponse(r.model, vectors, _usage(r.usage) or Usage())


def decode_model_list(body: bytes) -> list[str]:
    try:
        return [m.id for m in _models_decoder.decode(body).data]
    except DECODE_ERRORS as exc:
        raise _bad_upstream("model list", exc) from None


# ---- canonical -> OpenAI wire (responses to clients) --------------------------------------------


def _usage_json(u: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                           "total_tokens": u.total_tokens}
    if u.cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": u.cached_tokens}
    if u.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": u.reasoning_tokens}
    return out


def encode_chat_response(r: ChatResponse, model: str) -> bytes:
    m = r.message
    msg: dict[str, Any] = {"role": "assistant", "content": m.text() if m.content is not None else None}
    if m.tool_calls:
        msg["tool_calls"] = [_tool_call_json(c) for c in m.tool_calls]
    if m.reasoning:
        msg["reasoning_content"] = m.reasoning
    out: dict[str, Any] = {
        "id": r.id, "object": "chat.completion", "created": r.created, "model": model,
        "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": r.finish_reason}],
    }
    if r.usage is not None:
        out["usage"] = _usage_json(r.usage)
    return _json_encode(out)


class ChunkEncoder:
    """Encodes canonical chunks of one stream as OpenAI SSE events (api/encoded.py's Encoder)."""

    content_type = SSE_TYPE

    def __init__(self, id: str, model: str, created: int, include_usage: bool) -> None:
        self.head = {"id": id, "object": "chat.completion.chunk", "created": created, "model": model}
        self.include_usage = include_usage
        self.sent_role = False

    def encode(self, c: ChatChunk) -> bytes:
        out = b""
        delta: dict[str, Any] = {}
        if not self.sent_role:
            delta["role"] = "assistant"
            self.sent_role = True
        if c.content:
            delta["content"] = c.content
        if c.reasoning:
            delta["reasoning_content"] = c.reasoning
        if c.tool_calls:
            delta["tool_calls"] = [_tool_delta_json(t) for t in c.tool_calls]
        if delta or c.finish_reason is not None:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": c.finish_reason}
            out += b"data: " + _json_encode({**self.head, "choices": [choice]}) + b"\n\n"
        if c.usage is not None and self.include_usage:
            usage = {**self.head, "choices": [], "usage": _usage_json(c.usage)}
            out += b"data: " + _json_encode(usage) + b"\n\n"
        return out

    @staticmethod
    def done() -> bytes:
        return b"data: [DONE]\n\n"

    def opening(self, prompt_tokens: Callable[[], int]) -> bytes:
        return b""

    def closing(self, cut: bool, usage: Usage, reported: bool) -> bytes:
        if cut:
            return self.encode(ChatChunk(finish_reason="length", usage=usage)) + self.done()
        if self.include_usage and not reported:  # the upstream sent none: the count
            return self.encode(ChatChunk(usage=usage)) + self.done()
        return self.done()

    @staticmethod
    def failure(exc: GatewayError) -> bytes:
        return encode_stream_error(exc.status, exc.type, exc.message, exc.code)


class _ChunkHead(msgspec.Struct):
    id: str = ""
    created: int = 0
    model: str = ""


_head_decoder = msgspec.json.Decoder(_ChunkHead)


class LegacyChunks(ChunkEncoder):
    """The stream encoder for a client that asked in the legacy form (codecs/openai_legacy.py)."""

    def encode(self, c: ChatChunk) -> bytes:
        return legacy_events(super().encode(c))

    def closing(self, cut: bool, usage: Usage, reported: bool) -> bytes:
        return legacy_events(super().closing(cut, usage, reported))


def encode_answer(r: ChatResponse, req: ChatRequest) -> bytes:
    """A whole answer to a chat request, in the shape the client asked in."""
    body = encode_chat_response(r, req.model)
    return legacy_answer(body) if req.legacy_functions else body


def closing_events(last_event: bytes, finish_reason: str | None, usage: Usage | None) -> bytes:
    """Events the gateway adds at the end of a passed-through stream, with the id, created and model
    of `last_event` (the last one relayed; decoded once, here): a final chunk with `finish_reason`
    (a stream cut at its completion cap) and/or a usage chunk (the client asked for usage and the
    upstream sent none, or the cut came before it)."""
    try:
        head = _head_decoder.decode(last_event)
    except DECODE_ERRORS:
        head = _ChunkHead()
    enc = ChunkEncoder(head.id, head.model, head.created, usage is not None)
    enc.sent_role = True
    return enc.encode(ChatChunk(finish_reason=finish_reason, usage=usage))


def _tool_delta_json(t: ToolCallDelta) -> dict[str, Any]:
    out: dict[str, Any] = {"index": t.index}
    if t.id is not None:
        out["id"] = t.id
        out["type"] = "function"
    fn: dict[str, Any] = {}
    if t.name is not None:
        fn["name"] = t.name
    if t.arguments is not None:
        fn["arguments"] = t.arguments
    out["function"] = fn
    return out


def encode_stream_error(status: int, type_: str, message: str, code: str | None) -> bytes:
    # The openai package raises APIError on a data event whose JSON has an "error" key.
    err = {"error": {"message": message, "type": type_, "param": None, "code": code, "status": status}}
    return b"data: " + _json_encode(err) + b"\n\n"


def encode_embedding_response(r: EmbeddingResponse, model: str, encoding_format: str | None) -> bytes:
    data = []
    for i, vec in enumerate(r.vectors):
        emb: list[float] | str = vec
        if encoding_format == "base64":
            emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    usage = {"prompt_tokens": r.usage.prompt_tokens, "total_tokens": r.usage.prompt_tokens}
    return _json_encode({"object": "list", "data": data, "model": model, "usage": usage})


def upstream_body(body: bytes, req: ChatRequest, model: str | None, limit_field: str) -> bytes:
    """What the fast path sends an OpenAI upstream: the client's bytes, edited only where needed: the
    upstream `model` (None: the client's), `stream_options.include_usage` on a stream whose client did
    not ask for it (the gateway needs the usage), the output limit renamed to the field the upstream
    honours (`limit_field`, the service's `max_tokens_field`)."""
    force_usage = req.stream and not req.include_usage
    rename = req.limit_field is not None and req.limit_field != limit_field
    if model is None and not force_usage and not rename:
        return body
    return rewrite_request(body, model, force_usage, limit_field if rename else None)


def rewrite_request(body: bytes, model: str | None, force_usage: bool, limit_field: str | None = None,
                    stream: bool = False, limit: int | None = None) -> bytes:
    """The client's bytes with the only edits the fast path makes: the upstream `model` name,
    `stream_options.include_usage` (the gateway needs the usage), the output limit under the name
    the upstream honours (`limit_field`), and `stream: true` (a non-stream answer the gateway
    collects from a stream it can cut: api/collect.py); `limit`: the output limit to send when the
    client sent none (what a budget reserved), as `max_tokens`."""
    try:
        data = msgspec.json.decode(body)
    except DECODE_ERRORS as exc:  # bad UTF-8 in a field the typed decoder skipped (an unknown key)
        raise decode_error(exc) from None
    if limit is not None and data.get("max_tokens") is None and data.get("max_completion_tokens") is None:
        data["max_tokens"] = limit
    if model is not None:
        data["model"] = model
    if stream:
        data["stream"] = True
    if force_usage:
        opts = data.get("stream_options")
        data["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
    if limit_field is not None:
        # max_completion_tokens wins when both came, as in to_canonical()
        limit = data.pop("max_completion_tokens", None)
        fallback = data.pop("max_tokens", None)
        limit = limit if limit is not None else fallback
        if limit is not None:
            data[limit_field] = limit
    return _json_encode(data)
