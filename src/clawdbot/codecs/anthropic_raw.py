"""Anthropic -> Anthropic, bytes through (the fast path of /v1/messages to `type: anthropic` services):
what the gateway reads of a request it does not translate, the only edits it makes (the upstream
model name, a lower output limit), the usage of a whole answer, and a reader of the passed-through
stream events (output deltas, usage, the open block, the end, an error) with the events that end a
stream the gateway cut at its completion cap."""

from __future__ import annotations

import msgspec

from clawdbot.codecs.anthropic_stream import event
from clawdbot.codecs.anthropic_wire import Usage as WireUsage
from clawdbot.codecs.decoding import DECODE_ERRORS
from clawdbot.codecs.openai import decode_error
from clawdbot.core.errors import UpstreamError
from clawdbot.core.types import ChatRequest, Usage

_encode = msgspec.json.Encoder().encode
_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])


class Head(msgspec.Struct):
    """What routing, limits and the relay need of a request whose content the canonical types cannot
    hold (documents, server tools, ...): it goes only to services that speak Anthropic."""

    model: str
    max_tokens: int
    messages: list[msgspec.Raw]  # counted, not decoded
    stream: bool | None = None

    def request(self) -> ChatRequest:
        return ChatRequest(model=self.model, messages=[], stream=bool(self.stream), max_tokens=self.max_tokens,
                           include_usage=True)


_head = msgspec.json.Decoder(Head)


def read_head(body: bytes) -> Head | None:
    try:
        head = _head.decode(body)
    except DECODE_ERRORS:
        return None
    return head if head.model and head.max_tokens >= 1 and head.messages else None


def rewrite_request(body: bytes, model: str | None, max_tokens: int | None = None) -> bytes:
    """The client's bytes with the upstream's model name and (a budget's cap below the client's)
    `max_tokens`. Every other value is copied as its own bytes (msgspec.Raw): only the spacing
    between top-level fields may change."""
    if model is None and max_tokens is None:
        return body
    try:
        fields = _fields.decode(body)
    except DECODE_ERRORS as exc:  # bad UTF-8 in a key read_head skipped (an unknown one)
        raise decode_error(exc) from None
    if model is not None:
        fields["model"] = msgspec.Raw(_encode(model))
    if max_tokens is not None:
        fields["max_tokens"] = msgspec.Raw(b"%d" % max_tokens)
    return _encode(fields)


class _Answer(msgspec.Struct):
    type: str = ""
    usage: WireUsage | None = None
    model: str | None = None


_answer = msgspec.json.Decoder(_Answer)


def read_answer(body: bytes, service: str) -> tuple[Usage | None, str | None]:
    """A whole answer's usage (the prompt counts what the prompt cache held) and model; UpstreamError
    when the body is not a message."""
    try:
        a = _answer.decode(body)
    except DECODE_ERRORS:
        a = _Answer()
    if a.type != "message":
        raise UpstreamError(f"service {service!r} sent a body that is not a message")
    u = a.usage
    return (Usage(u.prompt(), u.output_tokens, u.cache_read_input_tokens or 0) if u is not None else None), a.model


class _Delta(msgspec.Struct, gc=False):
    text: str | None = None
    thinking: str | None = None
    partial_json: str | None = None


class _Started(msgspec.Struct, gc=False):
    usage: WireUsage | None = None
    model: str | None = None


class _Error(msgspec.Struct, gc=False):
    type: str = ""
    message: str = ""


class _Event(msgspec.Struct, gc=False):
    type: str = ""
    index: int = 0
    delta: _Delta | None = None
    usage: WireUsage | None = None
    message: _Started | None = None
    error: _Error | None = None


_event = msgspec.json.Decoder(_Event)

OTHER, OUTPUT, STOP, ERROR = range(4)


class EventReader:
    """Reads each passed-through event once: is it output (a non-empty text, thinking or tool-input
    delta: one token, as docs/limits.md counts), the end (message_stop) or an error event; keeps the
    usage (message_start's prompt, message_delta's output) and which block is open."""

    __slots__ = ("error", "model", "open", "output", "prompt")

    def __init__(self) -> None:
        self.prompt: int | None = None
        self.output: int | None = None
        self.open: int | None = None  # the index of the block started and not stopped
        self.model: str | None = None  # message_start's
        self.error = ""

    def read(self, data: bytes, service: str | None) -> int:
        try:
            ev = _event.decode(data)
        except DECODE_ERRORS as exc:
            raise UpstreamError(f"service {service!r} sent a malformed stream event: {str(exc)[:120]}") from None
        kind = ev.type
        if kind == "content_block_delta":
            d = ev.delta
            return OUTPUT if d is not None and (d.text or d.thinking or d.partial_json) else OTHER
        if kind == "content_block_start":
            self.open = ev.index
        elif kind == "content_block_stop":
            self.open = None
        elif kind == "message_start":
            u = ev.message.usage if ev.message is not None else None
            if u is not None:
                self.prompt = u.prompt()
            if ev.message is not None:
                self.model = ev.message.model
        elif kind == "message_delta" and ev.usage is not None:
            self.output = ev.usage.output_tokens
            if ev.usage.prompt():  # a later API version reports the prompt (cache reads included) again
                self.prompt = ev.usage.prompt()
        elif kind == "message_stop":
            return STOP
        elif kind == "error":
            err = ev.error or _Error()
            self.error = f"upstream stream error ({err.type or 'unknown'}): {err.message[:200]}"
            return ERROR
        return OTHER

    def cut(self, output_tokens: int) -> bytes:
        """The end of a stream cut at its completion cap: the open block closed, stop reason max_tokens."""
        out = b"" if self.open is None else event("content_block_stop", {"type": "content_block_stop",
                                                                         "index": self.open})
        return (out + event("message_delta", {"type": "message_delta",
                                              "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
                                              "usage": {"output_tokens": output_tokens}})
                + event("message_stop", {"type": "message_stop"}))
