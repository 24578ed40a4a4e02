"""A test server that speaks Anthropic's Messages API (the shapes of tests/fixtures/anthropic/):
POST /v1/messages, whole and streamed, GET /v1/models. It checks `x-api-key` and
`anthropic-version` like the API, echoes the last user text ("echo: ..."), calls a tool for
"call:NAME" (its input streamed in fragments), and fails on request: "fault:529" (overloaded, before
the answer; also "anthropic-overloaded", which other test servers ignore), "fault:error_event" (an
`error` event after the first text). "fixture:NAME" streams
tests/fixtures/anthropic/NAME.sse byte for byte; "ignore:max_tokens" answers past max_tokens; a
request with `cache_control` anywhere reports prompt-cache tokens (CACHE_READ, CACHE_WRITE). Each
request's bytes and headers are kept (`raw_requests`)."""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections import deque
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.upstreams.runner import ServerThread

_CALL = re.compile(r"call:([A-Za-z0-9_\-]+)")
_WORD = re.compile(r"\S+\s*|\s+")
INPUT_FRAGMENTS = ("", '{"x":', " 1}")
FIXTURES = Path(__file__).parent.parent / "fixtures" / "anthropic"
_FIXTURE = re.compile(r"fixture:([a-z_]+)")
CACHE_READ, CACHE_WRITE = 1000, 200  # prompt-cache tokens reported for a request with cache_control


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": kind, "message": message}}, status=status)


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class AnthropicUpstream(ServerThread):
    def __init__(self, api_key: str = "sk-ant-test", models: tuple[str, ...] = ("claude-test",)) -> None:
        self.api_key = api_key
        self.models = list(models)
        self._lock = threading.Lock()
        self._requests: deque[dict[str, Any]] = deque(maxlen=64)
        self.raw_requests: deque[tuple[bytes, dict[str, str]]] = deque(maxlen=64)  # body, headers
        app = web.Application()
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_get("/v1/models", self.list_models)
        super().__init__(app, name="anthropic-test-upstream")

    def service_yaml(self, name: str = "anth") -> str:
        """A `services:` entry of a gateway config for this server (its key, no breaker)."""
        return (f"  - name: {name}\n    type: anthropic\n    endpoint: {self.url}\n"
                f"    auth: {{key: {self.api_key}}}\n    breaker: {{enabled: false}}\n")

    @property
    def last_request(self) -> dict[str, Any] | None:
        with self._lock:
            return self._requests[-1] if self._requests else None

    def _auth(self, request: web.Request) -> web.Response | None:
        if request.headers.get("x-api-key") != self.api_key:
            return _error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        return None

    async def list_models(self, request: web.Request) -> web.Response:
        refused = self._auth(request)
        if refused is not None:
            return refused
        data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-05-22T00:00:00Z"}
                for m in self.models]
        return web.json_response({"data": data, "has_more": False, "first_id": self.models[0],
                                  "last_id": self.models[-1]})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        refused = self._auth(request)
        if refused is not None:
            return refused
        raw = await request.read()
        body = json.loads(raw)
        with self._lock:
            self._requests.append(body)
            self.raw_requests.append((raw, dict(request.headers)))
        if "max_tokens" not in body:
            return _error(400, "invalid_request_error", "max_tokens: Field required")
        last = body["messages"][-1]
        content = last["content"]
        if isinstance(content, list):
            text = " ".join(b.get("text", "") if b["type"] == "text" else
                            f"tool result: {b['content'][0]['text'] if b.get('content') else ''}"
                            for b in content if b["type"] in ("text", "tool_result"))
        else:
            text = content
        if "fault:529" in text or "anthropic-overloaded" in text:  # the second: only this server fails
            return _error(529, "overloaded_error", "Overloaded")
        fixture = _FIXTURE.search(text)
        if fixture and body.get("stream"):
            data = (FIXTURES / f"{fixture.group(1)}.sse").read_bytes()
            return web.Response(body=data, headers={"content-type": "text/event-stream"})
        calls = _CALL.findall(text) if body.get("tools") else []
        reply = text if text.startswith("tool result:") else f"echo: {text}"
        limit = None if "ignore:max_tokens" in text else body["max_tokens"]
        words = _WORD.findall(reply)[:limit]
        stop = "tool_use" if calls else ("max_tokens" if len(_WORD.findall(reply)) > body["max_tokens"] else "end_turn")
        usage_in = sum(len(json.dumps(m)) for m in body["messages"]) // 4
        cached = b'"cache_control"' in raw
        cache = {"cache_creation_input_tokens": CACHE_WRITE if cached else 0,
                 "cache_read_input_tokens": CACHE_READ if cached else 0}
        mid = "msg_" + secrets.token_hex(12)
        if not body.get("stream"):
            blocks: list[dict[str, Any]] = [] if calls else [{"type": "text", "text": "".join(words)}]
            blocks += [{"type": "tool_use", "id": "toolu_" + secrets.token_hex(8), "name": n, "input": {"x": 1}}
                       for n in calls]
            return web.json_response({
                "id": mid, "type": "message", "role": "assistant", "model": body["model"], "content": blocks,
                "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": usage_in, **cache, "output_tokens": len(words) + len(calls)}})
        resp = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
        await resp.prepare(request)
        await resp.write(_sse("message_start", {"type": "message_start", "message": {
            "id": mid, "type": "message", "role": "assistant", "model": body["model"], "stop_sequence": None,
            "usage": {"input_tokens": usage_in, **cache, "output_tokens": 1}, "content": [], "stop_reason": None}}))
        await resp.write(b'event: ping\ndata: {"type": "ping"}\n\n')
        index = 0
        if not calls:
            await resp.write(_sse("content_block_start", {"type": "content_block_start", "index": 0,
                                                          "content_block": {"type": "text", "text": ""}}))
            for i, w in enumerate(words):
                await resp.write(_sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                              "delta": {"type": "text_delta", "text": w}}))
                if i == 0 and "fault:error_event" in text:
                    await resp.write(_sse("error", {"type": "error", "error": {"type": "overloaded_error",
                                                                              "message": "Overloaded"}}))
                    return resp
            await resp.write(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
            index = 1
        for n in calls:
            await resp.write(_sse("content_block_start", {"type": "content_block_start", "index": index,
                                                          "content_block": {"type": "tool_use", "name": n, "input": {},
                                                                            "id": "toolu_" + secrets.token_hex(8)}}))
            for frag in INPUT_FRAGMENTS:
                await resp.write(_sse("content_block_delta", {"type": "content_block_delta", "index": index,
                                                              "delta": {"type": "input_json_delta",
                                                                        "partial_json": frag}}))
            await resp.write(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
            index += 1
        await resp.write(_sse("message_delta", {"type": "message_delta",
                                                "delta": {"stop_reason": stop, "stop_sequence": None},
                                                "usage": {"output_tokens": len(words) + len(calls)}}))
        await resp.write(_sse("message_stop", {"type": "message_stop"}))
        await resp.write_eof()
        return resp
