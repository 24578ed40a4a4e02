"""A replay upstream: a real aiohttp server on 127.0.0.1 that speaks one upstream dialect by
serving recorded captures (captures.py) byte for byte, each stream event in its own write. The
request's model names the capture, so the gateway config's `models:` picks the scenario. Every
request is recorded as it arrived (`requests`, `last`); `abort` streams half a capture, then waits
for the client to hang up and records that (`disconnects`)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.conformance import captures
from tests.upstreams.runner import ServerThread

CHAT_PATH = {"openai": "/v1/chat/completions", "ollama": "/api/chat", "anthropic": "/v1/messages"}
MODELS_PATH = {"openai": "/v1/models", "ollama": "/api/tags", "anthropic": "/v1/models"}
ABORT_WAIT = 20.0  # seconds an `abort` stream waits for its client to go away
NAMES = ("text", "length", "tool_call", "tool_calls", "json", "reasoning", "error_before", "error_after", "abort")


@dataclass(frozen=True)
class Seen:
    """One request as the upstream received it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class ReplayUpstream(ServerThread):
    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self._lock = threading.Lock()
        self._seen: deque[Seen] = deque(maxlen=64)
        self._gone: list[str] = []
        app = web.Application()
        app.router.add_post(CHAT_PATH[dialect], self.chat)
        app.router.add_get(MODELS_PATH[dialect], self.models)
        super().__init__(app, name=f"replay-{dialect}")

    @property
    def last(self) -> Seen:
        with self._lock:
            assert self._seen, f"the {self.dialect} upstream received no request"
            return self._seen[-1]

    def count(self) -> int:
        with self._lock:
            return len(self._seen)

    def disconnects(self) -> list[str]:
        with self._lock:
            return list(self._gone)

    def wait_disconnect(self, before: int, timeout: float = 10.0) -> bool:
        """Whether more than `before` abandoned streams were seen within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.disconnects()) > before:
                return True
            time.sleep(0.01)  # polling a condition, bounded by the deadline
        return False

    async def models(self, request: web.Request) -> web.Response:
        names = list(NAMES)
        if self.dialect == "ollama":
            return web.json_response({"models": [{"name": n, "model": n} for n in names]})
        return web.json_response({"object": "list", "data": [{"id": n, "object": "model"} for n in names]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        with self._lock:
            self._seen.append(Seen(request.path, dict(request.headers), body))
        name = str(body.get("model"))
        stream = bool(body.get("stream", self.dialect == "ollama"))  # Ollama streams unless told not to
        cap = captures.load(self.dialect, "text" if name == "abort" else name, stream)
        if cap is None:
            return web.json_response({"error": f"no capture {name!r} (stream={stream})"}, status=404)
        if not cap.stream:
            return web.Response(status=cap.status, body=cap.body, headers={"Content-Type": cap.content_type})
        resp = web.StreamResponse(status=cap.status, headers={"Content-Type": cap.content_type})
        await resp.prepare(request)
        events = cap.events()
        if name == "abort":
            return await self._abandoned(resp, events[: len(events) // 2], name)
        for ev in events:
            await resp.write(ev)
        await resp.write_eof()
        return resp

    async def _abandoned(self, resp: web.StreamResponse, events: list[bytes], name: str) -> web.StreamResponse:
        for ev in events:
            await resp.write(ev)
        try:
            await asyncio.sleep(ABORT_WAIT)  # cancelled when the client goes away
        except asyncio.CancelledError:
            with self._lock:
                self._gone.append(name)
            raise
        return resp
