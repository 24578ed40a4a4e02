"""What an upstream received, read back in no dialect: each reader accepts only its own dialect's
shapes (an image must be OpenAI's image_url part, Ollama's `images` entry or Anthropic's base64
source), so a request the gateway sent in the wrong shape reads as missing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.conformance.asks import PNG_B64


@dataclass
class Received:
    system: str = ""
    turns: list[tuple[str, str]] = field(default_factory=list)  # (user | assistant | tool, text)
    images: int = 0  # PNG_B64 images in the dialect's shape
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # assistant tool calls sent back
    linked: bool = True  # every tool result names a call sent before it
    max_tokens: int | None = None
    stop: list[str] | None = None
    json_mode: bool = False
    tools: list[str] = field(default_factory=list)
    stream: bool = False


def _stop(value: Any) -> list[str] | None:
    return [value] if isinstance(value, str) else value


def openai(body: dict[str, Any]) -> Received:
    r = Received(max_tokens=body.get("max_tokens") or body.get("max_completion_tokens"), stop=_stop(body.get("stop")),
                 json_mode=(body.get("response_format") or {}).get("type") in ("json_object", "json_schema"),
                 tools=[t["function"]["name"] for t in body.get("tools") or ()], stream=bool(body.get("stream")))
    ids: set[str] = set()
    for m in body["messages"]:
        content = m.get("content")
        if isinstance(content, list):
            r.images += sum(p.get("type") == "image_url" and p["image_url"]["url"] == f"data:image/png;base64,{PNG_B64}"
                            for p in content)
            content = "".join(p["text"] for p in content if p.get("type") == "text")
        if m["role"] in ("system", "developer"):
            r.system += content
            continue
        for c in m.get("tool_calls") or ():
            ids.add(c["id"])
            r.calls.append((c["function"]["name"], json.loads(c["function"]["arguments"])))
        if m["role"] == "tool":
            r.linked = r.linked and m.get("tool_call_id") in ids
        if content or not m.get("tool_calls"):
            r.turns.append((m["role"], content or ""))
    return r


def ollama(body: dict[str, Any]) -> Received:
    options = body.get("options") or {}
    r = Received(max_tokens=options.get("num_predict"), stop=_stop(options.get("stop")),
                 json_mode=body.get("format") == "json" or isinstance(body.get("format"), dict),
                 tools=[t["function"]["name"] for t in body.get("tools") or ()], stream=body.get("stream", True))
    names: set[str] = set()
    for m in body["messages"]:
        if m["role"] == "system":
            r.system += m["content"]
            continue
        r.images += sum(i == PNG_B64 for i in m.get("images") or ())
        for c in m.get("tool_calls") or ():
            assert isinstance(c["function"]["arguments"], dict), "Ollama takes arguments as an object"
            names.add(c["function"]["name"])
            r.calls.append((c["function"]["name"], c["function"]["arguments"]))
        if m["role"] == "tool":
            r.linked = r.linked and m.get("tool_name") in names
        if m["content"] or not m.get("tool_calls"):
            r.turns.append((m["role"], m["content"]))
    return r


def anthropic(body: dict[str, Any]) -> Received:
    system = body.get("system") or ""
    r = Received(system=system if isinstance(system, str) else "".join(b["text"] for b in system),
                 max_tokens=body.get("max_tokens"), stop=body.get("stop_sequences"),
                 tools=[t["name"] for t in body.get("tools") or ()], stream=bool(body.get("stream")))
    ids: set[str] = set()
    for m in body["messages"]:
        blocks = m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}]
        text = ""
        for b in blocks:
            if b["type"] == "text":
                text += b["text"]
            elif b["type"] == "image":
                r.images += b["source"] == {"type": "base64", "media_type": "image/png", "data": PNG_B64}
            elif b["type"] == "tool_use":
                ids.add(b["id"])
                r.calls.append((b["name"], b["input"]))
            elif b["type"] == "tool_result":
                r.linked = r.linked and b["tool_use_id"] in ids
                content = b["content"]
                r.turns.append(("tool", content if isinstance(content, str) else "".join(x["text"] for x in content)))
        if text:
            r.turns.append((m["role"], text))
    return r


READERS = {"openai": openai, "ollama": ollama, "anthropic": anthropic}


def read(dialect: str, body: dict[str, Any]) -> Received:
    return READERS[dialect](body)
