"""Ollama's native dialect (POST /api/chat) through the `ollama` package."""

from __future__ import annotations

from typing import Any

import ollama

from tests.conformance.asks import PNG, TOOLS, Ask, Call, Failure, Reply, Result, Said, User


def _message(t: User | Said | Result) -> dict[str, Any]:
    if isinstance(t, User):
        return {"role": "user", "content": t.text, **({"images": [PNG]} if t.image else {})}
    if isinstance(t, Said):
        calls = [{"function": {"name": n, "arguments": a}} for _, n, a in t.calls]
        return {"role": "assistant", "content": t.text, **({"tool_calls": calls} if calls else {})}
    return {"role": "tool", "content": t.text, "tool_name": t.name}


def request(ask: Ask) -> dict[str, Any]:
    messages = [{"role": "system", "content": ask.system}] if ask.system else []
    body: dict[str, Any] = {"model": ask.model, "messages": messages + [_message(t) for t in ask.turns],
                            "stream": ask.stream}
    options: dict[str, Any] = {}
    if ask.max_tokens is not None:
        options["num_predict"] = ask.max_tokens
    if ask.stop:
        options["stop"] = list(ask.stop)
    if options:
        body["options"] = options
    if ask.json_mode:
        body["format"] = "json"
    if ask.tools:
        body["tools"] = [{"type": "function", "function": {"name": n, "description": d, "parameters": p}}
                         for n, d, p in TOOLS]
    return body


def _finish(done_reason: str | None, calls: bool) -> str | None:
    if done_reason is None:
        return None
    return "tool_calls" if calls and done_reason == "stop" else done_reason


class OllamaDriver:
    name = "ollama"
    title = "Ollama native"
    endpoint = "POST /api/chat (`ollama`)"

    def __init__(self, url: str, key: str) -> None:
        self.client = ollama.Client(host=url, headers={"Authorization": f"Bearer {key}"}, timeout=20)

    def send(self, ask: Ask) -> Reply:
        out = Reply()
        try:
            parts = self.client.chat(**request(ask))
            for part in parts if ask.stream else [parts]:
                self._add(out, part)
        except ollama.ResponseError as exc:
            status = exc.status_code if exc.status_code > 0 else None  # -1: an error line in the stream
            out.failure = Failure(status, "error", exc.error)
        out.finish = _finish(out.finish, bool(out.calls))
        return out

    @staticmethod
    def _add(out: Reply, part: ollama.ChatResponse) -> None:
        m = part.message
        out.text += m.content or ""
        out.reasoning += m.thinking or ""
        for c in m.tool_calls or ():
            out.calls.append(Call("", c.function.name, dict(c.function.arguments)))
            out.fragments += 1  # Ollama sends each call whole
        if part.done:
            out.finish = part.done_reason
            out.prompt_tokens, out.completion_tokens = part.prompt_eval_count, part.eval_count

    def abort(self, ask: Ask) -> str:
        stream = self.client.chat(**request(ask))
        for part in stream:
            if part.message.content:
                stream.close()
                return str(part.message.content)
        raise AssertionError("the stream ended before any text")
