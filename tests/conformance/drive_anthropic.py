"""The Anthropic Messages dialect (POST /v1/messages) through the `anthropic` package."""

from __future__ import annotations

from typing import Any

import anthropic

from tests.conformance.asks import PNG_B64, TOOLS, Ask, Call, Failure, Reply, Result, Said, User
from tests.conformance.clients import CallParts

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}
DEFAULT_MAX_TOKENS = 256  # required by the dialect


def _content(t: User | Said | Result) -> tuple[str, Any]:
    if isinstance(t, User):
        if not t.image:
            return "user", t.text
        return "user", [{"type": "text", "text": t.text}, {
            "type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}]
    if isinstance(t, Said):
        if not t.calls:
            return "assistant", t.text
        return "assistant", [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in t.calls]
    return "user", [{"type": "tool_result", "tool_use_id": t.call_id, "content": t.text}]


def request(ask: Ask) -> dict[str, Any]:
    assert not ask.json_mode, "the Messages API has no JSON mode"
    messages: list[dict[str, Any]] = []
    for t in ask.turns:
        role, content = _content(t)
        if messages and messages[-1]["role"] == role:  # results of one turn: one user message
            messages[-1]["content"] = list(messages[-1]["content"]) + list(content)
        else:
            messages.append({"role": role, "content": content})
    body: dict[str, Any] = {"model": ask.model, "messages": messages,
                            "max_tokens": ask.max_tokens or DEFAULT_MAX_TOKENS}
    if ask.system:
        body["system"] = ask.system
    if ask.stop:
        body["stop_sequences"] = list(ask.stop)
    if ask.tools:
        body["tools"] = [{"name": n, "description": d, "input_schema": p} for n, d, p in TOOLS]
    return body


def _failure(exc: anthropic.APIStatusError, status: int | None) -> Failure:
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error")
    err = err if isinstance(err, dict) else {}
    return Failure(status, str(err.get("type")), str(err.get("message")))


class AnthropicDriver:
    name = "anthropic"
    title = "Anthropic Messages"
    endpoint = "POST /v1/messages (`anthropic`)"

    def __init__(self, url: str, key: str) -> None:
        self.client = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=20)

    def send(self, ask: Ask) -> Reply:
        try:
            return self._stream(ask) if ask.stream else self._whole(ask)
        except anthropic.APIStatusError as exc:
            return Reply(failure=_failure(exc, exc.status_code))

    def _whole(self, ask: Ask) -> Reply:
        r = self.client.messages.create(**request(ask))
        out = Reply(finish=FINISH.get(r.stop_reason or ""), prompt_tokens=r.usage.input_tokens,
                    completion_tokens=r.usage.output_tokens)
        for b in r.content:
            if b.type == "text":
                out.text += b.text
            elif b.type == "thinking":
                out.reasoning += b.thinking
            elif b.type == "tool_use":
                out.calls.append(Call(b.id, b.name, dict(b.input)))
        return out

    def _stream(self, ask: Ask) -> Reply:
        out, parts = Reply(), CallParts()
        calls: dict[int, int] = {}  # block index -> call index
        stream = self.client.messages.create(**request(ask), stream=True)  # an HTTP error raises here
        try:
            for ev in stream:
                if ev.type == "message_start":
                    out.prompt_tokens = ev.message.usage.input_tokens
                elif ev.type == "content_block_start" and ev.content_block.type == "tool_use":
                    calls[ev.index] = len(calls)
                    parts.add(calls[ev.index], ev.content_block.id, ev.content_block.name, None)
                elif ev.type == "content_block_delta":
                    d = ev.delta
                    if d.type == "text_delta":
                        out.text += d.text
                    elif d.type == "thinking_delta":
                        out.reasoning += d.thinking
                    elif d.type == "input_json_delta":
                        parts.add(calls[ev.index], None, None, d.partial_json)
                elif ev.type == "message_delta":
                    out.finish = FINISH.get(ev.delta.stop_reason or "")
                    out.completion_tokens = ev.usage.output_tokens
                    out.prompt_tokens = ev.usage.input_tokens or out.prompt_tokens
        except anthropic.APIStatusError as exc:  # an `error` event inside the stream
            out.failure = _failure(exc, None)
        out.calls, out.fragments = parts.calls(), parts.fragments
        return out

    def abort(self, ask: Ask) -> str:
        stream = self.client.messages.create(**request(ask), stream=True)
        for ev in stream:
            if ev.type == "content_block_delta" and ev.delta.type == "text_delta" and ev.delta.text:
                stream.close()
                return str(ev.delta.text)
        raise AssertionError("the stream ended before any text")
