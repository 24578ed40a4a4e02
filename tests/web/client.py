"""A test client for the chat socket (docs/websocket.md) on the `websockets` library: a background
reader keeps every frame, and tests wait on conditions over them (never on sleeps)."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Callable
from typing import Any, Self

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

Frame = dict[str, Any]
TERMINAL = ("final", "error", "aborted")


class ResError(AssertionError):
    def __init__(self, frame: Frame) -> None:
        super().__init__(f"request failed: {frame}")
        self.frame = frame
        self.code = frame["error"]["code"]


class WsClient:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[Frame] = []
        self.closed: ConnectionClosed | None = None
        self._changed = asyncio.Condition()
        self._next_id = 1
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, base_url: str, **kw: Any) -> Self:
        kw.setdefault("proxy", None)
        kw.setdefault("open_timeout", 10)
        ws = await websockets.connect(base_url.replace("http://", "ws://", 1) + "/ws", **kw)
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                self.frames.append(json.loads(msg))
                async with self._changed:
                    self._changed.notify_all()
        except ConnectionClosed as exc:
            self.closed = exc
        finally:
            if self.closed is None:
                self.closed = ConnectionClosed(self.ws.protocol.close_rcvd, self.ws.protocol.close_sent)
            async with self._changed:
                self._changed.notify_all()

    async def wait(self, predicate: Callable[[], bool], seconds: float = 10.0) -> None:
        async with asyncio.timeout(seconds), self._changed:
            await self._changed.wait_for(predicate)

    async def frame(self, match: Callable[[Frame], bool], seconds: float = 10.0) -> Frame:
        found: list[Frame] = []

        def seen() -> bool:
            found[:] = [f for f in self.frames if match(f)]
            if not found and self.closed is not None:
                raise AssertionError(f"socket closed ({self.closed}) before the frame came; got {self.frames[-5:]}")
            return bool(found)

        await self.wait(seen, seconds)
        return found[0]

    async def hello(self) -> Frame:
        return await self.frame(lambda f: f.get("event") == "hello")

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def request(self, method: str, params: dict[str, Any] | None = None, seconds: float = 10.0) -> Frame:
        rid = self._next_id
        self._next_id += 1
        await self.ws.send(json.dumps({"type": "req", "id": rid, "method": method, "params": params or {}}))
        return await self.frame(lambda f: f.get("type") == "res" and f.get("id") == rid, seconds)

    async def call(self, method: str, params: dict[str, Any] | None = None, seconds: float = 10.0) -> Any:
        res = await self.request(method, params, seconds)
        if not res["ok"]:
            raise ResError(res)
        return res["payload"]

    def events(self, run_id: str | None = None) -> list[Frame]:
        return [f for f in self.frames if f.get("type") == "event" and f.get("event") == "chat"
                and (run_id is None or f["payload"]["runId"] == run_id)]

    async def run_end(self, run_id: str, seconds: float = 20.0) -> Frame:
        """The event that ends the run."""
        return await self.frame(lambda f: f.get("event") == "chat" and f["payload"]["runId"] == run_id
                                and f["payload"]["state"] in TERMINAL, seconds)

    async def chat(self, text: str, seconds: float = 20.0, **params: Any) -> tuple[Frame, list[Frame]]:
        """Send, wait for the end; (the terminal event's payload, the run's delta payloads)."""
        sent = await self.call("chat.send", {"text": text, **params})
        end = await self.run_end(sent["runId"], seconds)
        deltas = [f["payload"] for f in self.events(sent["runId"]) if f["payload"]["state"] == "delta"]
        return end["payload"], deltas

    def seqs(self) -> list[int]:
        """The numbered events' seq (passing events, such as panel.overview, have none)."""
        return [f["seq"] for f in self.frames if f.get("type") == "event" and "seq" in f]

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def http_request(base_url: str, method: str, path: str, body: Any = None,
                 headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, body) of one plain HTTP request; repeated headers joined by \\n."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        hdrs = dict(headers or {})
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        out: dict[str, str] = {}
        for k, v in resp.getheaders():
            out[k.lower()] = f"{out[k.lower()]}\n{v}" if k.lower() in out else v
        return resp.status, out, resp.read()
    finally:
        conn.close()


def run(coro: Any, timeout: float = 60.0) -> Any:
    """Run a test's async body on a fresh loop, bounded in time."""

    async def bounded() -> Any:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())
