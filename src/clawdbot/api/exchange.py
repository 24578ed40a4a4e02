"""One HTTP exchange as the handlers see it: the ASGI triple, the request context and the headers
every response carries."""

from __future__ import annotations

import asyncio

from clawdbot.api.http import JSON, Receive, Scope, Send, read_body, respond
from clawdbot.core.context import RequestContext

WATCH_AFTER = 0.05  # seconds before a request starts watching for its client's disconnect


class Exchange:
    __slots__ = (
        "_ended",
        "_watch",
        "ctx",
        "disconnected",
        "receive",
        "resp_headers",
        "scope",
        "send",
        "started",
        "status",
    )

    def __init__(self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.ctx = ctx
        self.status = 0
        self.started = False  # response headers sent
        self.disconnected = False
        self.resp_headers: list[tuple[bytes, bytes]] = [(b"x-request-id", ctx.request_id.encode())]
        self._ended = False  # the last byte of the response was handed to the server
        self._watch: asyncio.TimerHandle | asyncio.Task[None] | None = None

    async def body(self, limit: int) -> bytes:
        return await read_body(self.scope, self.receive, limit)

    async def json(self, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        if status == 200:  # a whole answer, counted before it is encoded (api/chat.py, canonical.py)
            self.answered()
        self.status, self.started, self._ended = status, True, True
        headers = self.resp_headers + extra if extra else self.resp_headers
        await respond(self.send, status, body, JSON, headers)

    async def start(self, status: int, content_type: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status, self.started = status, True
        headers = [(b"content-type", content_type), *self.resp_headers, *(extra or [])]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def write(self, data: bytes) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    def answered(self) -> None:
        """The answer is whole and its usage counted: a metered request's spend record goes to the
        journal now, before the client has the last bytes (tenancy/metering.py Ticket.answered), so a
        process killed right after cannot lose it. Streams call it just before their last write, once
        the usage is final; a failure's spend is recorded when the request ends."""
        meter = self.ctx.meter
        if meter is not None:
            meter.answered(self.ctx)

    async def end(self, data: bytes = b"") -> None:
        self._ended = True
        await self.send({"type": "http.response.body", "body": data, "more_body": False})

    def watch_disconnect(self) -> None:
        """Cancel the handling task when the client goes away (after the body was read), so the
        upstream call is cancelled too. The watcher starts after WATCH_AFTER seconds: most fast
        requests are done by then, and a task per request cost ~5% of the gateway's CPU."""
        task = asyncio.current_task()
        assert task is not None
        self._watch = asyncio.get_running_loop().call_later(WATCH_AFTER, self._start_watch, task)

    def _start_watch(self, task: asyncio.Task[None]) -> None:
        self._watch = asyncio.get_running_loop().create_task(self._watch_receive(task))

    async def _watch_receive(self, task: asyncio.Task[None]) -> None:
        while True:
            msg = await self.receive()
            if msg["type"] == "http.disconnect":
                # Servers also answer http.disconnect once the response is complete: not a client gone.
                if not self._ended:
                    self.disconnected = True
                    task.cancel()
                return

    def stop_watching(self) -> None:
        w = self._watch
        if w is not None:
            self._watch = None
            w.cancel()
