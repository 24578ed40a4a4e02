"""Canonical stream chunks -> Anthropic's SSE events, as the Messages API sends them:

    message_start, ping, then per content block: content_block_start, content_block_delta...,
    content_block_stop; then message_delta (stop_reason, usage) and message_stop.

Blocks come in the order the answer does: thinking (thinking_delta), text (text_delta), each tool
call (tool_use, its arguments as input_json_delta). A block is closed when another kind starts.
The stop reason and usage are held until the stream ends, since an OpenAI-style upstream sends its
usage after the finish reason; an error after the start is an `error` event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from clawdbot.codecs.anthropic import error_type, message_id, stop_reason, usage_json
from clawdbot.core.errors import GatewayError
from clawdbot.core.types import ChatChunk, Usage

_encode = msgspec.json.Encoder().encode


def event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode(data) + b"\n\n"


class StreamEncoder:
    """Canonical chunks as Anthropic's events (api/encoded.py's Encoder)."""

    content_type = b"text/event-stream; charset=utf-8"
    __slots__ = ("_calls", "_kind", "finish", "id", "index", "model", "started", "usage")

    def __init__(self, model: str) -> None:
        self.id = message_id()
        self.model = model
        self.index = -1  # the open block's index
        self._kind: str | int | None = None  # "thinking", "text", or a tool call's stream index
        self._calls: set[int] = set()
        self.finish: str | None = None
        self.usage: Usage | None = None
        self.started = False

    def start(self, input_tokens: int) -> bytes:
        self.started = True
        msg: dict[str, Any] = {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 0}}
        return event("message_start", {"type": "message_start", "message": msg}) + event("ping", {"type": "ping"})

    def _open(self, kind: str | int, block: dict[str, Any]) -> bytes:
        out = self._close()
        self.index += 1
        self._kind = kind
        return out + event("content_block_start", {"type": "content_block_start", "index": self.index,
                                                   "content_block": block})

    def _close(self) -> bytes:
        if self._kind is None:
            return b""
        self._kind = None
        return event("content_block_stop", {"type": "content_block_stop", "index": self.index})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return event("content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta})

    def encode(self, chunk: ChatChunk) -> bytes:
        out: list[bytes] = []
        if chunk.reasoning:
            if self._kind != "thinking":
                out.append(self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""}))
            out.append(self._delta({"type": "thinking_delta", "thinking": chunk.reasoning}))
        if chunk.content:
            if self._kind != "text":
                out.append(self._open("text", {"type": "text", "text": ""}))
            out.append(self._delta({"type": "text_delta", "text": chunk.content}))
        for d in chunk.tool_calls or ():
            if d.index not in self._calls:  # a new call: its block opens with id and name
                self._calls.add(d.index)
                out.append(self._open(d.index, {"type": "tool_use", "id": d.id or f"toolu_{self.id[4:]}_{d.index}",
                                                "name": d.name or "", "input": {}}))
            elif self._kind != d.index:  # more of a call whose block was closed: not in Anthropic's model
                continue
            if d.arguments:
                out.append(self._delta({"type": "input_json_delta", "partial_json": d.arguments}))
        if chunk.finish_reason is not None:
            self.finish = chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage
        return b"".join(out)

    def done(self) -> bytes:
        u = self.usage
        usage: dict[str, int] = {"output_tokens": u.completion_tokens if u else 0}
        if u is not None:
            usage |= usage_json(u)
        return (self._close()
                + event("message_delta", {"type": "message_delta",
                                          "delta": {"stop_reason": stop_reason(self.finish), "stop_sequence": None},
                                          "usage": usage})
                + event("message_stop", {"type": "message_stop"}))

    def opening(self, prompt_tokens: Callable[[], int]) -> bytes:
        return self.start(prompt_tokens())

    def closing(self, cut: bool, usage: Usage, reported: bool) -> bytes:
        if cut:
            self.finish = "length"
        if self.usage is None or self.finish == "length":  # the count, not a partial report
            self.usage = usage
        return self.done()

    def failure(self, exc: GatewayError) -> bytes:
        return self.error(exc.status, exc.message)

    @staticmethod
    def error(status: int, message: str) -> bytes:
        return event("error", {"type": "error", "error": {"type": error_type(status), "message": message}})
