"""Ollama's native API as clients send it to clawdbot (/api/chat, /api/generate, /api/embed,
/api/embeddings): requests -> canonical, and the replies the model list endpoints give. The chat
reply encoders (canonical -> Ollama) are ollama_chat.py's. Wire reference: ollama/ollama
docs/api.md. Note Ollama's defaults: `stream` is true when absent; sampling settings come in
`options` (num_predict is the output limit); images are bare base64; tool-call arguments are
JSON objects."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from clawdbot.codecs import ollama_chat as ol
from clawdbot.codecs.decoding import DECODE_ERRORS
from clawdbot.codecs.ollama_chat import rfc3339
from clawdbot.codecs.openai import decode_error
from clawdbot.codecs.tool_ids import Calls
from clawdbot.core.errors import BadRequest, GatewayError
from clawdbot.core.types import (
    ChatChunk,
    ChatRequest,
    EmbeddingRequest,
    ImagePart,
    Message,
    Part,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)

_encode = msgspec.json.Encoder().encode
encode_json = _encode
NDJSON = b"application/x-ndjson"
VERSION = "0.9.0"  # the Ollama API version clawdbot answers as (/api/version): what its clients check


class _Function(msgspec.Struct):
    name: str
    arguments: dict[str, Any] | str | None = None


class _Call(msgspec.Struct):
    function: _Function
    id: str | None = None


class _Msg(msgspec.Struct):
    role: str
    content: str = ""
    images: list[str] | None = None
    tool_calls: list[_Call] | None = None
    thinking: str | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class _ToolFunction(msgspec.Struct):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class _Tool(msgspec.Struct):
    function: _ToolFunction
    type: str = "function"


class _Common(msgspec.Struct):
    model: str
    stream: bool | None = None
    format: str | dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    keep_alive: str | int | float | None = None
    think: bool | str | None = None


class ChatBody(_Common):
    messages: list[_Msg] = []
    tools: list[_Tool] | None = None


class GenerateBody(_Common):
    prompt: str = ""
    system: str | None = None
    images: list[str] | None = None
    suffix: str | None = None
    raw: bool | None = None
    template: str | None = None
    context: list[int] | None = None


class EmbedBody(msgspec.Struct):
    model: str
    input: str | list[str] = ""
    truncate: bool | None = None
    dimensions: int | None = None
    options: dict[str, Any] | None = None
    keep_alive: str | int | float | None = None


class EmbeddingsBody(msgspec.Struct):  # the older /api/embeddings
    model: str
    prompt: str = ""
    options: dict[str, Any] | None = None
    keep_alive: str | int | float | None = None


class ModelBody(msgspec.Struct):  # /api/show
    model: str = ""
    name: str = ""  # older clients


def _decode(kind: type[Any], body: bytes) -> Any:
    try:
        return msgspec.json.decode(body, type=kind)
    except DECODE_ERRORS as exc:
        raise decode_error(exc) from None


def _num(options: dict[str, Any], name: str, kind: type[Any]) -> Any:
    v = options.get(name)
    if v is None:
        return None
    if kind is float and isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    if kind is int and isinstance(v, int) and not isinstance(v, bool):
        return v
    raise BadRequest(f"options.{name}: expected a {kind.__name__}", param=f"options.{name}", code="invalid_type")


# options the canonical request holds; the rest go to Ollama upstreams as they came
_CANONICAL_OPTIONS = frozenset({"temperature", "top_p", "num_predict", "stop", "seed", "frequency_penalty",
                                "presence_penalty"})


def _settings(b: _Common) -> dict[str, Any]:
    o = b.options or {}
    stop = o.get("stop")
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise BadRequest("options.stop: expected a list of strings", param="options.stop", code="invalid_type")
    limit = _num(o, "num_predict", int)
    extra: dict[str, Any] = {}
    rest = {k: v for k, v in o.items() if k not in _CANONICAL_OPTIONS}
    if rest:
        extra["options"] = rest
    if b.think is not None:
        extra["think"] = b.think
    if b.keep_alive is not None:
        extra["keep_alive"] = b.keep_alive
    fmt: dict[str, Any] | None = None
    if b.format == "json":
        fmt = {"type": "json_object"}
    elif isinstance(b.format, dict):
        fmt = {"type": "json_schema", "json_schema": {"name": "response", "schema": b.format}}
    elif b.format not in (None, ""):
        raise BadRequest("format: expected \"json\" or a JSON schema object", param="format", code="invalid_value")
    return {"temperature": _num(o, "temperature", float), "top_p": _num(o, "top_p", float),
            "max_tokens": limit if limit is None or limit > 0 else None, "stop": stop or None,
            "seed": _num(o, "seed", int), "frequency_penalty": _num(o, "frequency_penalty", float),
            "presence_penalty": _num(o, "presence_penalty", float), "response_format": fmt,
            "extra": extra or None, "stream": b.stream is not False, "include_usage": True}


def _images(images: list[str] | None) -> list[Part]:
    return [ImagePart(f"data:image/png;base64,{i}") for i in images or ()]


def _message(i: int, m: _Msg, calls: Calls) -> Message:
    if m.role not in ("system", "user", "assistant", "tool"):
        raise BadRequest(f"messages.{i}.role: {m.role!r} is not system, user, assistant or tool",
                         param=f"messages.{i}.role", code="invalid_value")
    content: str | list[Part] = m.content
    if m.images:
        content = [TextPart(m.content), *_images(m.images)] if m.content else _images(m.images)
    if m.role == "tool":
        # Ollama names the tool, not the call (codecs/tool_ids.py): the name is kept, and the id is
        # the latest turn's call of that name, or one made up when no call matches
        call_id = m.tool_call_id or calls.answer(i, m.tool_name)
        return Message("tool", content, name=m.tool_name or None, tool_call_id=call_id)
    made = None
    if m.tool_calls:
        made = []
        for j, c in enumerate(m.tool_calls):
            args = c.function.arguments
            text = args if isinstance(args, str) else _encode(args or {}).decode()
            made.append(ToolCall(c.id or f"call_{i}_{j}", c.function.name, text))
        calls.turn([(c.name, c.id) for c in made])
    return Message(m.role, content, tool_calls=made, reasoning=m.thinking or None)


def parse_chat(body: bytes) -> ChatRequest:
    b: ChatBody = _decode(ChatBody, body)
    if not b.model:
        raise BadRequest("model is required", param="model", code="missing_required_parameter")
    calls = Calls()
    messages = [_message(i, m, calls) for i, m in enumerate(b.messages)]
    tools = [Tool(t.function.name, t.function.description, t.function.parameters) for t in b.tools] \
        if b.tools else None
    return ChatRequest(model=b.model, messages=messages, tools=tools, **_settings(b))


def parse_generate(body: bytes) -> tuple[ChatRequest, GenerateBody]:
    """/api/generate as a chat: the system prompt, then the prompt as the user's turn. `raw`,
    `template`, `suffix` and `context` need the model's own template: refused, named."""
    b: GenerateBody = _decode(GenerateBody, body)
    if not b.model:
        raise BadRequest("model is required", param="model", code="missing_required_parameter")
    for name in ("raw", "template", "suffix", "context"):
        if getattr(b, name):
            raise BadRequest(f"{name}: not supported through this gateway (it needs the model's own template)",
                             param=name, code="unsupported_parameter")
    messages = [Message("system", b.system)] if b.system else []
    content: str | list[Part] = [TextPart(b.prompt), *_images(b.images)] if b.images else b.prompt
    messages.append(Message("user", content))
    return ChatRequest(model=b.model, messages=messages, **_settings(b)), b


def parse_embed(body: bytes) -> EmbeddingRequest:
    b: EmbedBody = _decode(EmbedBody, body)
    inputs = [b.input] if isinstance(b.input, str) else list(b.input)
    if not b.model or not inputs:
        raise BadRequest("model and input are required", param="input" if b.model else "model",
                         code="missing_required_parameter")
    return EmbeddingRequest(model=b.model, input=inputs, dimensions=b.dimensions)


def parse_embeddings(body: bytes) -> EmbeddingRequest:
    b: EmbeddingsBody = _decode(EmbeddingsBody, body)
    if not b.model:
        raise BadRequest("model is required", param="model", code="missing_required_parameter")
    return EmbeddingRequest(model=b.model, input=[b.prompt])


def parse_model(body: bytes) -> str:
    b: ModelBody = _decode(ModelBody, body)
    name = b.model or b.name
    if not name:
        raise BadRequest("model is required", param="model", code="missing_required_parameter")
    return name


# ---- replies -------------------------------------------------------------------------------------


def encode_error(message: str) -> bytes:
    return _encode({"error": message})


def generate_line(model: str, text: str, thinking: str | None, done: bool,
                  extra: dict[str, Any] | None = None) -> bytes:
    out: dict[str, Any] = {"model": model, "created_at": rfc3339(time.time_ns()), "response": text}
    if thinking:
        out["thinking"] = thinking
    out["done"] = done
    if extra:
        out.update(extra)
    return _encode(out)


_DETAILS = {"parent_model": "", "format": "", "family": "", "families": None, "parameter_size": "",
            "quantization_level": ""}


def model_entry(name: str) -> dict[str, Any]:
    return {"name": name, "model": name, "modified_at": rfc3339(0), "size": 0, "digest": "",
            "details": dict(_DETAILS)}


def encode_tags(names: list[str]) -> bytes:
    return _encode({"models": [model_entry(n) for n in names]})


def encode_ps(names: list[str]) -> bytes:
    return _encode({"models": [{**model_entry(n), "expires_at": rfc3339(0), "size_vram": 0} for n in names]})


def encode_show(name: str, description: str | None, tools: bool = True) -> bytes:
    """`tools`: some deployment of the model can be offered tools (an app reads `capabilities` to
    decide whether to send them)."""
    return _encode({"modelfile": f"# served by clawdbot\nFROM {name}\n", "parameters": "", "template": "",
                    "details": dict(_DETAILS), "model_info": {"clawdbot.description": description or ""},
                    "capabilities": ["completion", "tools"] if tools else ["completion"]})


def encode_version() -> bytes:
    return _encode({"version": VERSION})


_DONE = {"stop": "stop", "length": "length", "tool_calls": "stop"}


def final_fields(finish: str | None, usage: Usage | None) -> dict[str, Any]:
    """The last line's done_reason and token counts."""
    out: dict[str, Any] = {"done_reason": _DONE.get(finish or "stop", "stop")}
    if usage is not None:
        out |= {"prompt_eval_count": usage.prompt_tokens, "eval_count": usage.completion_tokens}
    return out


class NDJSONEncoder:
    """Canonical chunks as Ollama's NDJSON lines (api/encoded.py's Encoder): text and thinking as
    they come; tool calls whole (Ollama sends each call complete in one line: the deltas are merged
    until the answer's end); the last line `done` with the counts."""

    content_type = NDJSON

    def __init__(self, model: str, generate: bool) -> None:
        self.model, self.generate = model, generate
        self.calls: dict[int, ToolCallDelta] = {}
        self.finish: str | None = None
        self.usage: Usage | None = None

    def opening(self, prompt_tokens: Callable[[], int]) -> bytes:
        return b""

    def encode(self, chunk: ChatChunk) -> bytes:
        if chunk.usage is not None:
            self.usage = chunk.usage
        for d in chunk.tool_calls or ():
            held = self.calls.get(d.index)
            self.calls[d.index] = d if held is None else ToolCallDelta(
                d.index, held.id or d.id, held.name or d.name, (held.arguments or "") + (d.arguments or ""))
        if chunk.finish_reason is not None:
            self.finish = chunk.finish_reason
        if not (chunk.content or chunk.reasoning):
            return b""
        if self.generate:
            return generate_line(self.model, chunk.content or "", chunk.reasoning, False) + b"\n"
        return ol.encode_stream_chunk(ChatChunk(content=chunk.content, reasoning=chunk.reasoning), self.model)

    def closing(self, cut: bool, usage: Usage, reported: bool) -> bytes:
        finish = "length" if cut else self.finish
        if self.usage is None or finish == "length":
            self.usage = usage
        if self.generate:
            return generate_line(self.model, "", None, True, final_fields(finish, self.usage)) + b"\n"
        tail = b""
        if self.calls:
            tail = ol.encode_stream_chunk(ChatChunk(tool_calls=[self.calls[i] for i in sorted(self.calls)]), self.model)
        return tail + ol.encode_stream_chunk(ChatChunk(finish_reason=finish or "stop", usage=self.usage), self.model)

    @staticmethod
    def failure(exc: GatewayError) -> bytes:
        return encode_error(exc.message) + b"\n"
