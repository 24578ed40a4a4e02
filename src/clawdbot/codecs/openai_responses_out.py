"""OpenAI's Responses dialect, outbound: canonical answers -> the response object, and canonical
stream chunks -> the semantic events, in the order OpenAI sends them:

    response.created, response.in_progress, then per output item: response.output_item.added,
    its deltas (response.reasoning_text.delta; response.content_part.added and
    response.output_text.delta; response.function_call_arguments.delta), their .done events and
    response.output_item.done; last response.completed (or response.incomplete at the output
    limit, or error + response.failed when the upstream failed after the start).

Every event carries `sequence_number`. Reasoning text becomes a `reasoning` item whose `content`
holds `reasoning_text` (as OpenAI's open-weight models return it), text a `message` item, each tool
call a `function_call` item. A function call stays open until the answer ends, so argument
fragments of several calls may interleave."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from clawdbot.codecs.openai import SSE_TYPE
from clawdbot.codecs.openai_responses import Parsed, item_id
from clawdbot.core.errors import GatewayError
from clawdbot.core.types import ChatChunk, ChatResponse, Message, ToolCall, Usage

_encode = msgspec.json.Encoder().encode
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_id() -> str:
    return item_id("resp")


def usage_json(u: Usage | None) -> dict[str, Any] | None:
    if u is None:
        return None
    return {"input_tokens": u.prompt_tokens, "input_tokens_details": {"cached_tokens": u.cached_tokens},
            "output_tokens": u.completion_tokens, "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
            "total_tokens": u.total_tokens}


class Shell:
    """What every form of one response shares: its id, creation time and the request's options."""

    def __init__(self, p: Parsed, model: str, store: bool) -> None:
        self.id = response_id()
        self.created_at = int(time.time())
        self.p, self.model, self.store = p, model, store

    def object(self, status: str, output: list[dict[str, Any]], usage: Usage | None = None,
               finish: str | None = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
        b = self.p.body
        reason = INCOMPLETE.get(finish or "") if status != "failed" else None
        if reason is not None and status == "completed":
            status = "incomplete"
        fmt = b.text.format if b.text is not None and b.text.format is not None else None
        text = {"format": msgspec.to_builtins(fmt) if fmt is not None else {"type": "text"}}
        reasoning = b.reasoning
        return {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status,
            "background": False, "error": error,
            "incomplete_details": {"reason": reason} if status == "incomplete" else None,
            "instructions": b.instructions, "max_output_tokens": b.max_output_tokens, "model": self.model,
            "output": output, "parallel_tool_calls": b.parallel_tool_calls is not False,
            "previous_response_id": b.previous_response_id,
            "reasoning": {"effort": reasoning.effort if reasoning else None,
                          "summary": (reasoning.summary or reasoning.generate_summary) if reasoning else None},
            "store": self.store, "temperature": b.temperature, "text": text,
            "tool_choice": b.tool_choice if b.tool_choice is not None else "auto", "tools": b.tools or [],
            "top_p": b.top_p, "truncation": b.truncation or "disabled", "usage": usage_json(usage),
            "user": b.user, "metadata": b.metadata or {},
        }


def _reasoning_item(id: str, text: str, status: str) -> dict[str, Any]:
    return {"id": id, "type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": text}],
            "status": status}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(id: str, text: str, status: str) -> dict[str, Any]:
    return {"id": id, "type": "message", "status": status, "role": "assistant", "content": [_text_part(text)]}


def _call_item(id: str, call: ToolCall, status: str) -> dict[str, Any]:
    return {"id": id, "type": "function_call", "status": status, "call_id": call.id, "name": call.name,
            "arguments": call.arguments}


def output_items(m: Message, status: str = "completed") -> list[dict[str, Any]]:
    out = []
    if m.reasoning:
        out.append(_reasoning_item(item_id("rs"), m.reasoning, status))
    text = m.text()
    if text or not m.tool_calls:
        out.append(_message_item(item_id("msg"), text, status))
    out += [_call_item(item_id("fc"), c, status) for c in m.tool_calls or ()]
    return out


def encode_response(shell: Shell, resp: ChatResponse) -> dict[str, Any]:
    status = "incomplete" if resp.finish_reason in INCOMPLETE else "completed"
    return shell.object(status, output_items(resp.message, status), resp.usage, resp.finish_reason)


def error_json(exc: GatewayError) -> dict[str, Any]:
    return {"code": "rate_limit_exceeded" if exc.status == 429 else "server_error", "message": exc.message}


class _Call:
    __slots__ = ("args", "call_id", "id", "index", "name")

    def __init__(self, index: int, call_id: str, name: str) -> None:
        self.id, self.index, self.call_id, self.name = item_id("fc"), index, call_id, name
        self.args: list[str] = []


class EventEncoder:
    """Canonical chunks as Responses events (api/encoded.py's Encoder). After the stream,
    `final` is the response object as response.completed carried it, and `message()` the answer
    as a canonical message (what a stored conversation continues from)."""

    content_type = SSE_TYPE

    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self.seq = 0
        self.items: dict[int, dict[str, Any]] = {}  # output index -> the finished item
        self.next_index = 0
        self.open_kind: str | None = None  # "reasoning" | "message": the text item being streamed
        self.open_index, self.open_id, self.open_text = -1, "", [""]
        self.calls: dict[int, _Call] = {}  # the stream's tool-call index -> its open item
        self.call_order: list[int] = []  # output indexes of the calls
        self.finish: str | None = None
        self.usage: Usage | None = None  # the upstream's, with its cached and reasoning counts
        self.final: dict[str, Any] | None = None
        self.reasoning: list[str] = []
        self.text: list[str] = []

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        data = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + _encode(data) + b"\n\n"

    def opening(self, prompt_tokens: Callable[[], int]) -> bytes:
        shell = self.shell.object("in_progress", [])
        return self._event("response.created", {"response": shell}) + self._event("response.in_progress",
                                                                                 {"response": shell})

    def _open_text(self, kind: str) -> bytes:
        out = self._close_text("completed")
        self.open_kind, self.open_index, self.open_id, self.open_text = kind, self.next_index, "", []
        self.next_index += 1
        if kind == "reasoning":
            self.open_id = item_id("rs")
            item: dict[str, Any] = {"id": self.open_id, "type": "reasoning", "summary": [], "content": [],
                                    "status": "in_progress"}
            return out + self._event("response.output_item.added", {"output_index": self.open_index, "item": item})
        self.open_id = item_id("msg")
        item = {"id": self.open_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        return (out + self._event("response.output_item.added", {"output_index": self.open_index, "item": item})
                + self._event("response.content_part.added", {"item_id": self.open_id, "output_index": self.open_index,
                                                              "content_index": 0, "part": _text_part("")}))

    def _close_text(self, status: str) -> bytes:
        kind, self.open_kind = self.open_kind, None
        if kind is None:
            return b""
        text, where = "".join(self.open_text), {"item_id": self.open_id, "output_index": self.open_index}
        if kind == "reasoning":
            item = _reasoning_item(self.open_id, text, status)
            out = self._event("response.reasoning_text.done", {**where, "content_index": 0, "text": text})
        else:
            item = _message_item(self.open_id, text, status)
            out = (self._event("response.output_text.done", {**where, "content_index": 0, "text": text, "logprobs": []})
                   + self._event("response.content_part.done", {**where, "content_index": 0, "part": _text_part(text)}))
        self.items[self.open_index] = item
        return out + self._event("response.output_item.done", {"output_index": self.open_index, "item": item})

    def encode(self, chunk: ChatChunk) -> bytes:
        out = b""
        if chunk.reasoning:
            if self.open_kind != "reasoning":
                out += self._open_text("reasoning")
            self.open_text.append(chunk.reasoning)
            self.reasoning.append(chunk.reasoning)
            out += self._event("response.reasoning_text.delta", {"item_id": self.open_id, "output_index":
                                                                 self.open_index, "content_index": 0,
                                                                 "delta": chunk.reasoning})
        if chunk.content:
            if self.open_kind != "message":
                out += self._open_text("message")
            self.open_text.append(chunk.content)
            self.text.append(chunk.content)
            out += self._event("response.output_text.delta", {"item_id": self.open_id, "output_index": self.open_index,
                                                              "content_index": 0, "delta": chunk.content,
                                                              "logprobs": []})
        for d in chunk.tool_calls or ():
            call = self.calls.get(d.index)
            if call is None:
                out += self._close_text("completed")
                call = self.calls[d.index] = _Call(self.next_index, d.id or item_id("call"), d.name or "")
                self.call_order.append(d.index)
                self.next_index += 1
                item = {"id": call.id, "type": "function_call", "status": "in_progress", "call_id": call.call_id,
                        "name": call.name, "arguments": ""}
                out += self._event("response.output_item.added", {"output_index": call.index, "item": item})
            if d.arguments:
                call.args.append(d.arguments)
                out += self._event("response.function_call_arguments.delta",
                                   {"item_id": call.id, "output_index": call.index, "delta": d.arguments})
        if chunk.finish_reason is not None:
            self.finish = chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage
        return out

    def _close_all(self, status: str) -> bytes:
        out = self._close_text(status)
        for i in self.call_order:
            call = self.calls[i]
            args = "".join(call.args)
            item = _call_item(call.id, ToolCall(call.call_id, call.name, args), status)
            self.items[call.index] = item
            out += self._event("response.function_call_arguments.done",
                               {"item_id": call.id, "output_index": call.index, "name": call.name, "arguments": args})
            out += self._event("response.output_item.done", {"output_index": call.index, "item": item})
        self.call_order = []
        return out

    def output(self) -> list[dict[str, Any]]:
        return [self.items[i] for i in sorted(self.items)]

    def closing(self, cut: bool, usage: Usage, reported: bool) -> bytes:
        finish = "length" if cut else self.finish
        status = "incomplete" if finish in INCOMPLETE else "completed"
        out = self._close_all(status)
        if reported and self.usage is not None:  # the count, or the upstream's own with its details
            usage = self.usage
        self.final = self.shell.object(status, self.output(), usage, finish)
        return out + self._event(f"response.{status}", {"response": self.final})

    def failure(self, exc: GatewayError) -> bytes:
        err = error_json(exc)
        failed = self.shell.object("failed", self.output(), None, None, err)
        return (self._event("error", {"code": err["code"], "message": exc.message, "param": None})
                + self._event("response.failed", {"response": failed}))

    def message(self) -> Message:
        calls = [ToolCall(self.calls[i].call_id, self.calls[i].name, "".join(self.calls[i].args))
                 for i in sorted(self.calls)]
        return Message("assistant", "".join(self.text) or None, tool_calls=calls or None,
                       reasoning="".join(self.reasoning) or None)
