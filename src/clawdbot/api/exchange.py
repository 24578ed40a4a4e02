"""One HTTP exchange as the handlers see it: the ASGI triple, the request context and the headers
every response carries."""

from __future__ import annotations

import asyncio
import contextlib

from clawdbot.api.http import JSON, Receive, Scope, Send, read_body, respond
from clawdbot.core.context import RequestContext


class Exchange:
    __slots__ = ("ctx", "disconnected", "receive", "resp_headers", "scope", "send", "started", "status",
                 "_watch")

    def __init__(self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.ctx = ctx
        self.status = 0
        self.started = False  # response headers sent
        self.disconnected = False
        self.resp_headers: list[tuple[bytes, bytes]] = [(b"x-request-id", ctx.request_id.encode())]
        self._watch: asyncio.Task[None] | None = None

    async def body(self, limit: int) -> bytes:
        return await read_body(self.scope, self.receive, limit)

    async def json(self, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status, self.started = status, True
        headers = self.resp_headers + extra if extra else self.resp_headers
        await respond(self.send, status, body, JSON, headers)

    async def start(self, status: int, content_type: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status, self.started = status, True
        headers = [(b"content-type", content_type), *self.resp_headers, *(extra or [])]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def write(self, data: bytes) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self, data: bytes = b"") -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": False})

    def watch_disconnect(self) -> None:
        """Cancel the handling task when the client goes away (after the body was read), so the
        upstream call is cancelled too."""
        task = asyncio.current_task()
        assert task is not None

        async def watch() -> None:
            while True:
                msg = await self.receive()
                if msg["type"] == "http.disconnect":
                    self.disconnected = True
                    task.cancel()
                    return

        self._watch = asyncio.get_running_loop().create_task(watch())

    def stop_watching(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(Exception):
                self._watch = None
