"""Scripted upstreams for the HTTP client's edge cases: a real asyncio server on a loopback socket
whose every connection runs a script (read the request, write exact bytes, pause, close), and an
in-memory `Opener` (the client's transport seam) that runs the same kind of script with no socket.

A script is `async def script(conn: Peer) -> None`; `Peer.request()` reads one whole request (head
and Content-Length body) and records it."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from clawdbot.config.schema import Service
from clawdbot.providers.http import UpstreamHTTP
from clawdbot.providers.http_client import Connection


class Peer:
    """The server's side of one connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None, index: int) -> None:
        self.reader, self.writer, self.index = reader, writer, index

    async def request(self) -> bytes:
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await self.reader.readexactly(length) if length else b""
        return head + body

    def write(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)

    async def drain(self) -> None:
        assert self.writer is not None
        await self.writer.drain()

    def close(self) -> None:
        assert self.writer is not None
        self.writer.close()

    def reset(self) -> None:
        """Close with a TCP RST (SO_LINGER 0), as a crashed server's kernel would."""
        assert self.writer is not None
        sock = self.writer.get_extra_info("socket")
        import socket
        import struct

        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.close()


Script = Callable[[Peer], Awaitable[None]]


class Server:
    """`async with Server(script) as srv:` a server on 127.0.0.1 that runs `script` per connection.
    `srv.requests`: every request a script read; `srv.connections`: connections accepted."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script, self.tls = script, tls
        self.requests: list[bytes] = []
        self.connections = 0
        self._srv: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        assert self._srv is not None
        port = self._srv.sockets[0].getsockname()[1]
        return f"{'https' if self.tls else 'http'}://{'localhost' if self.tls else '127.0.0.1'}:{port}"

    async def __aenter__(self) -> Server:
        self._srv = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._srv is not None
        self._srv.close()
        for w in list(self._writers):  # scripts waiting to read see the end of the stream
            w.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        peer = _Recording(reader, writer, self.connections, self.requests)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await self.script(peer)
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()


class _Recording(Peer):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None, index: int,
                 log: list[bytes]) -> None:
        super().__init__(reader, writer, index)
        self.log = log

    async def request(self) -> bytes:
        req = await super().request()
        self.log.append(req)
        return req


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


def run(main: Callable[[], Awaitable[None]]) -> None:
    """A test's coroutine on a fresh loop, bounded."""
    asyncio.run(asyncio.wait_for(main(), 30))


async def ok(peer: Peer) -> None:
    """A script: `{}` for every request on the connection (kept alive)."""
    while True:
        await peer.request()
        peer.write(OK)
        await peer.drain()


async def fetch_json(http: UpstreamHTTP, path: str = "/x") -> bytes:
    """One POST through the client; the whole body."""
    import time

    from clawdbot.core.context import RequestContext

    resp = await http.open("POST", path, RequestContext("t"), body=b"{}")
    return await http.read_body(resp, time.monotonic() + 10)


def service(url: str, **kw: object) -> Service:
    return msgspec.convert({"name": "svc", "type": "openai", "endpoint": url, **kw}, Service)


def client(url: str, **kw: object) -> UpstreamHTTP:
    return UpstreamHTTP(service(url, **kw))


# -- the transport seam: a scripted server with no socket ------------------------------------------


class _MemoryTransport(asyncio.Transport):
    """The client's side of an in-memory connection: what it writes feeds the script's reader."""

    def __init__(self, to_server: asyncio.StreamReader) -> None:
        super().__init__()
        self._to_server = to_server
        self._closing = False
        self.protocol: Connection | None = None
        self.paused = False
        self.held: list[bytes] = []  # what the script wrote while the client had reading paused

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._closing:
            self._to_server.feed_data(bytes(data))

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._to_server.feed_eof()
        if self.protocol is not None:
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        held, self.held = self.held, []
        for data in held:
            asyncio.get_running_loop().call_soon(self._deliver, data)

    def _deliver(self, data: bytes) -> None:
        if self.paused:
            self.held.append(data)
        elif not self._closing and self.protocol is not None:
            self.protocol.data_received(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class _MemoryWriter:
    """What a script writes reaches the client's protocol on the next loop turn."""

    def __init__(self, transport: _MemoryTransport, conn: Connection) -> None:
        self.transport, self.conn = transport, conn

    def write(self, data: bytes) -> None:
        """Delivered whole, in one data_received (or held while the client has reading paused)."""
        if not self.transport.is_closing():
            asyncio.get_running_loop().call_soon(self.transport._deliver, data)

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def close(self) -> None:
        self.transport.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class MemoryOpener:
    """An Opener (providers/http_transport.py) that runs `script` per connection, in memory."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.connections = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def open(self, factory: Callable[[], Connection]) -> Connection:
        self.connections += 1
        reader = asyncio.StreamReader()
        transport = _MemoryTransport(reader)
        conn = factory()
        transport.protocol = conn
        conn.connection_made(transport)
        peer = _Recording(reader, None, self.connections, self.requests)
        peer.writer = _MemoryWriter(transport, conn)  # type: ignore[assignment]
        task = asyncio.create_task(self._run(peer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return conn

    async def _run(self, peer: Peer) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await self.script(peer)
