"""OpenAI's Responses dialect (POST /v1/responses), inbound: the request body -> a canonical
ChatRequest plus what only this dialect has (stored-response options, the input items as given).

`input` is text or a list of items: messages (user, system, developer, assistant; text, images,
earlier output text), `function_call` items (the model's earlier calls) and `function_call_output`
items (their results), and `reasoning` items (earlier reasoning text, kept on the next assistant
turn). Function tools only: hosted tools (web search, file search, computer use, MCP...) run on
OpenAI's servers and are refused with a 400 that names them, as is every field this gateway cannot
honour (docs/dialects.md lists them). Unknown top-level fields are refused, not ignored."""

from __future__ import annotations

import secrets
from typing import Any, Literal

import msgspec

from clawdbot.codecs.decoding import DECODE_ERRORS
from clawdbot.codecs.openai import decode_error
from clawdbot.core.errors import BadRequest
from clawdbot.core.types import ChatRequest, ImagePart, Message, Part, TextPart, Tool, ToolCall

MAX_METADATA_PAIRS = 16  # OpenAI's bounds on `metadata`
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
ROLES = {"user": "user", "system": "system", "developer": "developer", "assistant": "assistant"}
# `include` values that ask for nothing this gateway could leave out: encrypted reasoning is only
# ever produced by OpenAI's own models (Codex asks for it whatever the upstream is).
HARMLESS_INCLUDES = frozenset({"reasoning.encrypted_content"})


class TextFormat(msgspec.Struct, forbid_unknown_fields=True):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class TextConfig(msgspec.Struct, forbid_unknown_fields=True):
    format: TextFormat | None = None
    verbosity: str | None = None


class ReasoningConfig(msgspec.Struct, forbid_unknown_fields=True):
    effort: str | None = None
    summary: str | None = None
    generate_summary: str | None = None  # the older name of `summary`


class StreamOptions(msgspec.Struct, forbid_unknown_fields=True):
    include_obfuscation: bool | None = None  # padding against length side channels: nothing to pad here


class ResponsesBody(msgspec.Struct, forbid_unknown_fields=True):
    model: str
    input: str | list[dict[str, Any]] = []
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    user: str | None = None
    safety_identifier: str | None = None
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    truncation: Literal["disabled", "auto"] | None = None
    include: list[str] | None = None
    background: bool | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None  # a cache-routing hint for OpenAI: accepted, changes nothing
    max_tool_calls: int | None = None
    top_logprobs: int | None = None
    prompt: dict[str, Any] | None = None
    conversation: str | dict[str, Any] | None = None


class Parsed(msgspec.Struct):
    """A Responses request: the canonical request (this turn's messages, instructions first), the
    options the response object echoes, and the input items as stored for /input_items."""

    chat: ChatRequest
    body: ResponsesBody
    items: list[dict[str, Any]]  # this turn's input, each item with an id
    turn: list[Message]  # this turn's messages without the instructions (what a stored conversation keeps)


def item_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def _bad(message: str, param: str, code: str = "invalid_value") -> BadRequest:
    return BadRequest(message, param=param, code=code)


def _unsupported(what: str, param: str, why: str) -> BadRequest:
    return _bad(f"{what} is not supported through this gateway ({why}).", param, "unsupported_parameter")


def parse(body: bytes) -> Parsed:
    try:
        b = msgspec.json.decode(body, type=ResponsesBody)
    except DECODE_ERRORS as exc:
        raise decode_error(exc) from None
    _refuse_unsupported(b)
    items = [{"type": "message", "role": "user", "content": b.input}] if isinstance(b.input, str) else b.input
    if not items:
        raise _bad("'input' must not be empty.", "input")
    turn, stored = _messages(items)
    messages = ([Message("system", b.instructions)] if b.instructions else []) + turn
    extra: dict[str, Any] = {}
    if b.parallel_tool_calls is not None:
        extra["parallel_tool_calls"] = b.parallel_tool_calls
    if b.reasoning is not None and b.reasoning.effort is not None:
        extra["reasoning_effort"] = b.reasoning.effort
    chat = ChatRequest(
        model=b.model, messages=messages, stream=bool(b.stream), tools=_tools(b.tools), tool_choice=_tool_choice(b),
        response_format=_format(b.text), temperature=b.temperature, top_p=b.top_p, max_tokens=b.max_output_tokens,
        user=b.user or b.safety_identifier, include_usage=True, extra=extra or None)
    return Parsed(chat, b, stored, turn)


def _refuse_unsupported(b: ResponsesBody) -> None:
    if not b.model:
        raise _bad("'model' must not be empty.", "model")
    if b.max_output_tokens is not None and b.max_output_tokens < 1:
        raise _bad("Invalid 'max_output_tokens': must be at least 1.", "max_output_tokens")
    if b.background:
        raise _unsupported("'background'", "background", "responses are answered while the request is open")
    if b.truncation == "auto":
        raise _unsupported("truncation 'auto'", "truncation", "the gateway does not know each model's context "
                           "window; trim the input or use 'disabled'")
    for i, name in enumerate(b.include or ()):
        if name not in HARMLESS_INCLUDES:
            raise _unsupported(f"include {name!r}", f"include[{i}]", "it names output only OpenAI produces")
    for name, value in (("prompt", b.prompt), ("conversation", b.conversation), ("top_logprobs", b.top_logprobs),
                        ("max_tool_calls", b.max_tool_calls)):
        if value is not None:
            raise _unsupported(f"'{name}'", name, "see docs/dialects.md; use input items and previous_response_id")
    if b.service_tier not in (None, "auto", "default"):
        raise _unsupported(f"service_tier {b.service_tier!r}", "service_tier", "the gateway routes by its own config")
    if b.text is not None and b.text.verbosity is not None:
        raise _unsupported("'text.verbosity'", "text.verbosity", "no upstream dialect but OpenAI's has it")
    if b.metadata is not None:
        _check_metadata(b.metadata)


def _check_metadata(metadata: dict[str, str]) -> None:
    if len(metadata) > MAX_METADATA_PAIRS:
        raise _bad(f"'metadata': at most {MAX_METADATA_PAIRS} pairs.", "metadata")
    for k, v in metadata.items():
        if len(k) > MAX_METADATA_KEY or len(v) > MAX_METADATA_VALUE:
            raise _bad(f"'metadata': keys at most {MAX_METADATA_KEY} and values at most {MAX_METADATA_VALUE} "
                       "characters.", f"metadata.{k[:MAX_METADATA_KEY]}")


# ---- input items -> messages ---------------------------------------------------------------------


def _messages(items: list[dict[str, Any]]) -> tuple[list[Message], list[dict[str, Any]]]:
    """The items as canonical messages (consecutive function calls join one assistant turn), and
    the items as stored, each with an id."""
    out: list[Message] = []
    stored: list[dict[str, Any]] = []
    reasoning: str | None = None  # a reasoning item's text, for the assistant turn after it
    waiting: int | None = None  # the first reasoning item no assistant turn has followed yet
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item.get("type", "message")
        if kind == "message":
            msg = _message(item, where)
            if msg.role == "assistant":
                msg.reasoning, reasoning, waiting = reasoning or None, None, None
            out.append(msg)
            stored.append({"id": _str(item, "id", where, required=False) or item_id("msg"), "type": "message",
                           "role": msg.role, "content": _stored_content(item["content"]), "status": "completed"})
        elif kind == "function_call":
            call = ToolCall(_str(item, "call_id", where), _str(item, "name", where), _str(item, "arguments", where))
            last = out[-1] if out else None
            if last is not None and last.role == "assistant" and (last.tool_calls or not last.text()):
                last.tool_calls = [*(last.tool_calls or ()), call]
                last.reasoning = last.reasoning or reasoning
            else:
                out.append(Message("assistant", None, tool_calls=[call], reasoning=reasoning))
            reasoning = waiting = None
            stored.append({"id": item.get("id") or item_id("fc"), "type": "function_call", "call_id": call.id,
                           "name": call.name, "arguments": call.arguments, "status": "completed"})
        elif kind == "function_call_output":
            call_id = _str(item, "call_id", where)
            output = _tool_output(item.get("output"), f"{where}.output")
            out.append(Message("tool", output, tool_call_id=call_id))
            stored.append({"id": item.get("id") or item_id("fco"), "type": "function_call_output",
                           "call_id": call_id, "output": output, "status": "completed"})
        elif kind == "reasoning":
            reasoning = _reasoning_text(item, where) or reasoning
            waiting = i if waiting is None else waiting
            stored.append({"id": item.get("id") or item_id("rs"), "type": "reasoning",
                           "summary": item.get("summary") or [], "content": item.get("content") or []})
        elif kind == "item_reference":
            raise _unsupported("an 'item_reference' item", f"{where}.type", "send previous_response_id or the item")
        else:
            raise _unsupported(f"an input item of type {kind!r}", f"{where}.type",
                               "only message, function_call, function_call_output and reasoning items are")
    if waiting is not None:  # OpenAI's API refuses it too: reasoning is the start of an assistant turn
        raise _bad(f"Item 'input[{waiting}]' of type 'reasoning' was provided without its required following "
                   "item (an assistant message or function_call).", f"input[{waiting}]")
    return out, stored


def _str(item: dict[str, Any], key: str, where: str, required: bool = True) -> str:
    value = item.get(key)
    if isinstance(value, str) and (value or not required):
        return value
    if value is None and not required:
        return ""
    raise _bad(f"'{where}.{key}' must be a non-empty string.", f"{where}.{key}")


def _message(item: dict[str, Any], where: str) -> Message:
    given = item.get("role")
    role = ROLES.get(given) if isinstance(given, str) else None  # a list or object is no role (nor hashable)
    if role is None:
        raise _bad(f"'{where}.role' must be one of user, system, developer, assistant.", f"{where}.role")
    content = item.get("content")
    if isinstance(content, str):
        return Message(role, content)
    if not isinstance(content, list):
        raise _bad(f"'{where}.content' must be a string or a list of content parts.", f"{where}.content")
    parts: list[Part] = []
    for j, part in enumerate(content):
        parts.append(_part(part, f"{where}.content[{j}]"))
    if all(isinstance(p, TextPart) for p in parts):  # plain text: what every upstream takes
        return Message(role, "".join(p.text for p in parts if isinstance(p, TextPart)))
    return Message(role, parts)


def _part(part: Any, where: str) -> Part:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
        return TextPart(part["text"])
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return TextPart(part["refusal"])
    if kind == "input_image":
        url = part.get("image_url")
        if isinstance(url, str) and url:
            detail = part.get("detail")
            return ImagePart(url, detail if isinstance(detail, str) else None)
        raise _unsupported("an input_image without 'image_url'", where, "file ids live in OpenAI's file store")
    if kind == "input_file":
        raise _unsupported("an 'input_file' part", where, "files need OpenAI's file handling")
    raise _bad(f"'{where}' must be an input_text, output_text, refusal or input_image part.", f"{where}.type")


def _stored_content(content: Any) -> Any:
    if isinstance(content, str):
        return [{"type": "input_text", "text": content}]
    return content


def _tool_output(output: Any, where: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        texts = []
        for j, part in enumerate(output):
            if not (isinstance(part, dict) and part.get("type") in ("input_text", "output_text")
                    and isinstance(part.get("text"), str)):
                raise _unsupported(f"a {part.get('type') if isinstance(part, dict) else 'non-object'!r} part in a "
                                   "tool's output", f"{where}[{j}]", "tool results are text")
            texts.append(part["text"])
        return "".join(texts)
    raise _bad(f"'{where}' must be a string or a list of input_text parts.", where)


def _reasoning_text(item: dict[str, Any], where: str) -> str:
    texts: list[str] = []
    for key in ("content", "summary"):
        parts = item.get(key) or []
        if not isinstance(parts, list):
            raise _bad(f"'{where}.{key}' must be a list.", f"{where}.{key}")
        texts += [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
        if texts:  # the full reasoning text when there is one, else its summary
            break
    return "".join(texts)


# ---- tools and formats ---------------------------------------------------------------------------


def _tools(tools: list[dict[str, Any]] | None) -> list[Tool] | None:
    if not tools:
        return None
    out = []
    for i, t in enumerate(tools):
        kind = t.get("type")
        if kind != "function":
            raise _unsupported(f"a tool of type {kind!r}", f"tools[{i}].type",
                               "hosted tools run on OpenAI's servers; function tools are supported")
        name = t.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(f"'tools[{i}].name' must be a non-empty string.", f"tools[{i}].name")
        params, desc, strict = t.get("parameters"), t.get("description"), t.get("strict")
        if params is not None and not isinstance(params, dict):
            raise _bad(f"'tools[{i}].parameters' must be a JSON schema object.", f"tools[{i}].parameters")
        out.append(Tool(name, desc if isinstance(desc, str) else None, params,
                        strict if isinstance(strict, bool) else None))
    return out


def _tool_choice(b: ResponsesBody) -> str | dict[str, Any] | None:
    choice = b.tool_choice
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"name": choice["name"]}
    raise _unsupported(f"tool_choice {choice!r}", "tool_choice", "auto, none, required or a function are")


def _format(text: TextConfig | None) -> dict[str, Any] | None:
    f = text.format if text is not None else None
    if f is None or f.type == "text":
        return None
    if f.type == "json_object":
        return {"type": "json_object"}
    if f.schema is None or not f.name:
        raise _bad("'text.format' of type json_schema needs 'name' and 'schema'.", "text.format")
    schema: dict[str, Any] = {"name": f.name, "schema": f.schema}
    if f.strict is not None:
        schema["strict"] = f.strict
    if f.description is not None:
        schema["description"] = f.description
    return {"type": "json_schema", "json_schema": schema}
