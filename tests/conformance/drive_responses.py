"""The OpenAI Responses dialect (POST /v1/responses) through the `openai` package. Streams go
through the package's own stream manager (`responses.stream`), which checks the event order
(created first, every delta after its item was added, every item done before completed)."""

from __future__ import annotations

import json
from typing import Any

import openai

from tests.conformance.asks import PNG_B64, TOOLS, Ask, Call, Failure, Reply, Result, Said, User
from tests.conformance.clients import CallParts


def _items(t: User | Said | Result) -> list[dict[str, Any]]:
    if isinstance(t, User):
        if not t.image:
            return [{"role": "user", "content": t.text}]
        return [{"role": "user", "content": [{"type": "input_text", "text": t.text}, {
            "type": "input_image", "image_url": f"data:image/png;base64,{PNG_B64}", "detail": "auto"}]}]
    if isinstance(t, Said):
        if not t.calls:
            return [{"role": "assistant", "content": t.text}]
        return [{"type": "function_call", "call_id": i, "name": n, "arguments": json.dumps(a)} for i, n, a in t.calls]
    return [{"type": "function_call_output", "call_id": t.call_id, "output": t.text}]


def request(ask: Ask) -> dict[str, Any]:
    if ask.stop:
        raise AssertionError("the Responses API has no stop sequences")
    body: dict[str, Any] = {"model": ask.model, "input": [i for t in ask.turns for i in _items(t)]}
    if ask.system:
        body["instructions"] = ask.system
    if ask.max_tokens is not None:
        body["max_output_tokens"] = ask.max_tokens
    if ask.json_mode:
        body["text"] = {"format": {"type": "json_object"}}
    if ask.tools:
        body["tools"] = [{"type": "function", "name": n, "description": d, "parameters": p} for n, d, p in TOOLS]
    return body


def _finish(status: str | None, reason: str | None, calls: bool) -> str | None:
    if status == "incomplete" and reason == "max_output_tokens":
        return "length"
    if status == "completed":
        return "tool_calls" if calls else "stop"
    return None


class ResponsesDriver:
    name = "responses"
    title = "OpenAI Responses"
    endpoint = "POST /v1/responses (`openai`)"

    def __init__(self, url: str, key: str) -> None:
        self.client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=20)

    def send(self, ask: Ask) -> Reply:
        try:
            return self._stream(ask) if ask.stream else self._whole(ask)
        except openai.APIStatusError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            return Reply(failure=Failure(exc.status_code, str(body.get("type")), exc.message))

    def _whole(self, ask: Ask) -> Reply:
        r = self.client.responses.create(**request(ask))
        out = Reply(text=r.output_text)
        for item in r.output:
            if item.type == "reasoning":
                out.reasoning += "".join(c.text for c in item.content or ())
            elif item.type == "function_call":
                out.calls.append(Call(item.call_id, item.name, json.loads(item.arguments or "{}")))
        reason = r.incomplete_details.reason if r.incomplete_details else None
        out.finish = _finish(r.status, reason, bool(out.calls))
        if r.usage is not None:
            out.prompt_tokens, out.completion_tokens = r.usage.input_tokens, r.usage.output_tokens
        return out

    def _stream(self, ask: Ask) -> Reply:
        out, parts = Reply(), CallParts()
        index: dict[int, int] = {}  # output index -> call number
        with self.client.responses.stream(**request(ask)) as stream:
            for ev in stream:
                if ev.type == "response.output_text.delta":
                    out.text += ev.delta
                elif ev.type == "response.reasoning_text.delta":
                    out.reasoning += ev.delta
                elif ev.type == "response.output_item.added" and ev.item.type == "function_call":
                    index[ev.output_index] = len(index)
                    parts.add(index[ev.output_index], ev.item.call_id, ev.item.name, None)
                elif ev.type == "response.function_call_arguments.delta":
                    parts.add(index[ev.output_index], None, None, ev.delta)
                elif ev.type in ("response.completed", "response.incomplete"):
                    r = ev.response
                    reason = r.incomplete_details.reason if r.incomplete_details else None
                    out.finish = _finish(r.status, reason, bool(index))
                    if r.usage is not None:
                        out.prompt_tokens, out.completion_tokens = r.usage.input_tokens, r.usage.output_tokens
                elif ev.type == "response.failed":
                    err = ev.response.error
                    out.failure = Failure(None, err.code if err else "", err.message if err else "")
        out.calls, out.fragments = parts.calls(), parts.fragments
        return out

    def abort(self, ask: Ask) -> str:
        with self.client.responses.stream(**request(ask)) as stream:
            for ev in stream:
                if ev.type == "response.output_text.delta" and ev.delta:
                    stream.close()
                    return ev.delta
        raise AssertionError("the stream ended before any text")
