"""One chat WebSocket (`/ws`): the checks before the upgrade, then a reader that answers requests
in order and a writer that drains the socket's bounded outbox.

The socket is a window onto a logical connection (web/connections.py): it starts on a new one
(announced by `hello`), and may move to an older one with `connect.resume` as its first request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgspec

from clawdbot.api.http import Receive, Scope, Send, deny
from clawdbot.web import frames
from clawdbot.web.auth import Authenticator, origin_allowed
from clawdbot.web.chat import AbortParams, SendParams, chat_abort, chat_send
from clawdbot.web.connections import Connection
from clawdbot.web.frames import WsError
from clawdbot.web.hub import Hub
from clawdbot.web.methods import METHODS, Caller, Handler, P
from clawdbot.web.outbox import MAX_FRAMES, Outbox

log = logging.getLogger("clawdbot.web")
ALL_METHODS: dict[str, tuple[type[P], Handler]] = {
    **METHODS,
    "chat.send": (SendParams, chat_send),
    "chat.abort": (AbortParams, chat_abort),
}
CLOSE_TOO_BIG = 1009
DRAIN_S = 5.0  # how long queued frames may take to leave before a close we initiate
_encode = msgspec.json.Encoder().encode


class ResumeParams(P):
    conn_id: str
    resume_token: str
    last_seq: int


def own_url(scope: Scope, headers: dict[bytes, bytes]) -> str:
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    host = headers.get(b"host", b"").decode("latin-1")
    if not host and scope.get("server"):
        addr, port = scope["server"]
        host = f"{addr}:{port}"
    return f"{scheme}://{host}"


async def serve_socket(hub: Hub, auth: Authenticator, scope: Scope, receive: Receive, send: Send) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    headers: dict[bytes, bytes] = dict(reversed(scope["headers"]))
    if not origin_allowed(headers, hub.allowed_origins):
        await deny(scope, send, 403, "forbidden", "This origin may not open the chat socket.")
        return
    bearer = b"authorization" in headers
    addr = hub.throttle.address(scope)
    wait = hub.throttle.wait(addr) if bearer else 0
    if wait:
        await deny(scope, send, 429, "rate_limited", f"Too many invalid keys from this address; retry in {wait} s.")
        return
    principal = auth.principal(headers)
    if principal is None:
        if bearer:  # a wrong key, not a missing or expired cookie
            hub.throttle.failed(addr)
        await deny(scope, send, 401, "unauthorized",
                   "Log in (POST /auth/login) or send the master key as a Bearer token.")
        return
    conn = hub.connections.open(principal)
    if conn is None:
        await deny(scope, send, 503, "internal", "Too many connections; try again later.")
        return
    await send({"type": "websocket.accept"})
    await Socket(hub, conn, own_url(scope, headers)).run(receive, send)


class Socket:
    def __init__(self, hub: Hub, conn: Connection, url: str) -> None:
        self.hub = hub
        self.conn = conn
        self.url = url
        self.max_frame = hub.settings.max_frame_bytes
        self.outbox = Outbox(max_frames=max(MAX_FRAMES, hub.settings.resume_events + 512))
        self.requests = 0
        self.close_code: int | None = None

    async def run(self, receive: Receive, send: Send) -> None:
        hub, metrics = self.hub, self.hub.gateway.metrics
        hub.connections.attach(self.conn, self.outbox)
        metrics.ws_connections += 1
        self.conn.emit("hello", {
            "connId": self.conn.id, "resumeToken": self.conn.resume_token, "user": self.conn.principal.user,
            "server": {"version": hub.version, "role": hub.role},
            "tools": hub.pipeline.agent is not None,  # chat.send's `tools` runs MCP tools (docs/websocket.md)
        })
        reader = asyncio.create_task(self._read(receive))
        writer = asyncio.create_task(self._write(send))

        def cut() -> None:  # the outbox overflowed, or the connection resumed on another socket
            reader.cancel()
            writer.cancel()

        self.outbox.on_cut = cut
        try:
            await asyncio.wait([reader, writer], return_when=asyncio.FIRST_COMPLETED)
            if self.close_code is not None and not writer.done():
                self.outbox.finish()
                await asyncio.wait([writer], timeout=DRAIN_S)
                with contextlib.suppress(OSError, TimeoutError):  # a client that reads nothing
                    await asyncio.wait_for(send({"type": "websocket.close", "code": self.close_code}), DRAIN_S)
        finally:
            self.outbox.on_cut = None  # it holds the tasks, which hold this socket: a cycle
            for t in (reader, writer):
                t.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            if self.outbox.overflowed:
                log.warning("cut off a socket of connection %s: the client stopped reading", self.conn.id)
            self.outbox.close()
            hub.connections.detach(self.conn, self.outbox)
            metrics.ws_connections -= 1

    async def _write(self, send: Send) -> None:
        try:
            while batch := await self.outbox.take():
                for frame in batch:
                    await send({"type": "websocket.send", "text": frame})
        except OSError:  # uvicorn's ClientDisconnected: the client is gone
            return

    async def _read(self, receive: Receive) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                return
            if msg["type"] != "websocket.receive":
                continue
            data: str | bytes = msg.get("text") or msg.get("bytes") or b""
            if self._too_big(data):
                self.close_code = CLOSE_TOO_BIG
                return
            await self._handle(data)

    def _too_big(self, data: str | bytes) -> bool:
        # Also enforced by the server (uvicorn's ws_max_size), which never buffers such a frame.
        n = len(data)
        if isinstance(data, str) and self.max_frame // 4 < n <= self.max_frame:
            n = len(data.encode("utf-8", "surrogatepass"))  # a lone surrogate counts, it does not raise
        return n > self.max_frame

    def _push(self, frame: bytes) -> None:
        self.outbox.push(frame.decode())

    async def _handle(self, data: str | bytes) -> None:
        try:
            req = frames.parse_request(data, *self.hub.json_limits)
        except frames.BadFrame as exc:
            self._push(frames.error(exc.request_id, exc))
            return
        self.requests += 1
        try:
            payload = await self._call(req)
        except WsError as exc:
            self._push(frames.error(req.id, exc))
            return
        except Exception:
            log.exception("method %s failed", req.method)
            self._push(frames.error(req.id, WsError("internal", "The gateway failed; the details are in its log.")))
            return
        replay: list[str] = payload.pop("_replay", [])
        self._push(frames.ok(req.id, payload))
        for frame in replay:  # the missed events, right after the reply and before any live one
            self.outbox.push(frame)

    async def _call(self, req: frames.Request) -> dict[str, Any]:
        if req.method == "connect.resume":
            return await self._resume(frames.params(ResumeParams, req.params))
        entry = ALL_METHODS.get(req.method)
        if entry is None:
            raise WsError("unknown_method", f"Unknown method {req.method!r}.")
        cls, handler = entry
        return await handler(Caller(self.hub, self.conn, self.url), frames.params(cls, req.params))

    async def _resume(self, p: ResumeParams) -> dict[str, Any]:
        if self.requests != 1:
            raise WsError("bad_params", "connect.resume must be the first request on a socket.")
        conns = self.hub.connections
        if self.hub.shared_connections is not None:  # with Redis: wherever the connection is (web/connections_redis.py)
            self.conn, payload = await self.hub.shared_connections.resume(
                self.conn, self.outbox, p.conn_id, p.resume_token, p.last_seq)
            return payload
        old = conns.find(p.conn_id)
        if old is None or old.principal != self.conn.principal or not old.token_matches(p.resume_token):
            raise WsError("not_found", "That connection is gone; start afresh (the hello on this socket).")
        events = old.since(p.last_seq)
        if events is None:
            raise WsError("not_found", "The events after lastSeq are no longer held; start afresh.")
        # The socket's own connection announced itself with a hello and nothing else: drop it.
        conns.drop(self.conn)
        conns.attach(old, self.outbox)
        self.conn = old
        return {"resumed": True, "replayed": len(events), "connId": old.id, "lastSeq": old.seq, "_replay": events}
