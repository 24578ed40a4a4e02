"""The OpenAI Chat Completions dialect (POST /v1/chat/completions) through the `openai` package."""

from __future__ import annotations

import json
from typing import Any

import openai

from tests.conformance.asks import PNG_B64, TOOLS, Ask, Call, Failure, Reply, Result, Said, User
from tests.conformance.clients import CallParts


def _message(t: User | Said | Result) -> dict[str, Any]:
    if isinstance(t, User):
        if not t.image:
            return {"role": "user", "content": t.text}
        return {"role": "user", "content": [{"type": "text", "text": t.text}, {
            "type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}]}
    if isinstance(t, Said):
        if not t.calls:
            return {"role": "assistant", "content": t.text}
        return {"role": "assistant", "content": None, "tool_calls": [
            {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}} for i, n, a in t.calls]}
    return {"role": "tool", "tool_call_id": t.call_id, "content": t.text}


def request(ask: Ask) -> dict[str, Any]:
    messages = [{"role": "system", "content": ask.system}] if ask.system else []
    body: dict[str, Any] = {"model": ask.model, "messages": messages + [_message(t) for t in ask.turns]}
    if ask.max_tokens is not None:
        body["max_tokens"] = ask.max_tokens
    if ask.stop:
        body["stop"] = list(ask.stop)
    if ask.json_mode:
        body["response_format"] = {"type": "json_object"}
    if ask.tools:
        body["tools"] = [{"type": "function", "function": {"name": n, "description": d, "parameters": p}}
                         for n, d, p in TOOLS]
    if ask.stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


def _failure(exc: openai.APIError, status: int | None) -> Failure:
    body = exc.body if isinstance(exc.body, dict) else {}
    return Failure(status, str(body.get("type")), exc.message)


class OpenAIDriver:
    name = "openai"
    title = "OpenAI Chat Completions"
    endpoint = "POST /v1/chat/completions (`openai`)"

    def __init__(self, url: str, key: str) -> None:
        self.client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=20)

    def send(self, ask: Ask) -> Reply:
        try:
            return self._stream(ask) if ask.stream else self._whole(ask)
        except openai.APIStatusError as exc:
            return Reply(failure=_failure(exc, exc.status_code))

    def _whole(self, ask: Ask) -> Reply:
        r = self.client.chat.completions.create(**request(ask))
        m = r.choices[0].message
        calls = [Call(c.id, c.function.name, json.loads(c.function.arguments))
                 for c in m.tool_calls or () if isinstance(c, openai.types.chat.ChatCompletionMessageFunctionToolCall)]
        return Reply(text=m.content or "", reasoning=getattr(m, "reasoning_content", None) or "", calls=calls,
                     finish=r.choices[0].finish_reason, prompt_tokens=r.usage.prompt_tokens if r.usage else None,
                     completion_tokens=r.usage.completion_tokens if r.usage else None)

    def _stream(self, ask: Ask) -> Reply:
        out, parts = Reply(), CallParts()
        stream = self.client.chat.completions.create(**request(ask))  # an HTTP error raises here
        try:
            for chunk in stream:
                if chunk.usage is not None:
                    out.prompt_tokens, out.completion_tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                for choice in chunk.choices:
                    d = choice.delta
                    out.text += d.content or ""
                    out.reasoning += getattr(d, "reasoning_content", None) or ""
                    for c in d.tool_calls or ():
                        parts.add(c.index, c.id, c.function.name if c.function else None,
                                  c.function.arguments if c.function else None)
                    out.finish = choice.finish_reason or out.finish
        except openai.APIError as exc:  # an error event inside the stream
            out.failure = _failure(exc, None)
        out.calls, out.fragments = parts.calls(), parts.fragments
        return out

    def abort(self, ask: Ask) -> str:
        stream = self.client.chat.completions.create(**request(ask))
        for chunk in stream:
            text = "".join(c.delta.content or "" for c in chunk.choices)
            if text:
                stream.close()
                return text
        raise AssertionError("the stream ended before any text")
