"""A lean pipelined Redis connection for the request path's scripts (rate limits and budgets: two
EVALSHA batches per metered request). redis-py's asyncio client costs ~200 us of CPU per pipeline
here (connection-pool checkout, command packing in Python, its retry and response machinery); this
writes commands packed by hiredis on one long-lived connection and reads replies with hiredis's C
parser: one write and one wake-up per batch, and the batches of one event-loop turn (concurrent requests)
share them.

Replies come back in the order commands were sent, so every command gets a future in a FIFO and
`data_received` resolves them as hiredis completes replies. A caller that is cancelled or times
out leaves its futures in the FIFO (their replies still arrive and are consumed in order); a
connection that fails, or whose replies stop within the timeout, is dropped and reopened at the
next call. Error replies are returned as `hiredis.ReplyError` values for the caller to judge
(NOSCRIPT is not an error to raise). Everything else (admin, pub/sub, seeding) stays on redis-py."""

from __future__ import annotations

import asyncio
import collections
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis

ReplyError = hiredis.ReplyError


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        # Commands of this event-loop turn, written together at its end: concurrent requests share
        # one write (and their replies one read) instead of a system call each.
        self.outgoing: list[bytes] = []

    def queue(self, data: bytes) -> None:
        if not self.outgoing:
            asyncio.get_running_loop().call_soon(self.flush)
        self.outgoing.append(data)

    def flush(self) -> None:
        data, self.outgoing = self.outgoing, []
        if data and self.transport is not None and not self.closed:
            self.transport.write(b"".join(data))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass of it

    def data_received(self, data: bytes) -> None:
        reader, waiters = self.reader, self.waiters
        reader.feed(data)
        while True:
            reply = reader.gets()
            if reply is False:
                return
            if not waiters:  # a reply nobody asked for: the stream is out of step
                self._fail(ConnectionError("Redis sent a reply to no command"))
                return
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError(f"Redis connection lost ({exc or 'closed'})"))

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()


class LeanRedis:
    def __init__(self, host: str, port: int, db: int = 0, username: str | None = None,
                 password: str | None = None, timeout: float = 5.0) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.timeout = timeout
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    @classmethod
    def from_url(cls, url: str, timeout: float = 5.0) -> LeanRedis | None:
        """For redis://host:port/db URLs; None for what it does not speak (TLS, unix sockets):
        those stay on redis-py."""
        try:
            u = urlsplit(url)
            port = u.port or 6379
        except ValueError:
            return None
        if u.scheme != "redis" or not u.hostname:
            return None
        path = u.path.strip("/")
        db = int(path) if path.isdigit() else 0
        return cls(u.hostname, port, db, unquote(u.username) if u.username else None,
                   unquote(u.password) if u.password else None, timeout)

    async def _connection(self) -> _Protocol:
        proto = self._proto
        if proto is not None and not proto.closed and proto.transport is not None \
                and not proto.transport.is_closing():
            return proto
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            proto = self._proto
            if proto is not None and not proto.closed and proto.transport is not None \
                    and not proto.transport.is_closing():
                return proto
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(self.timeout):
                _, proto = await loop.create_connection(_Protocol, self.host, self.port)
            hello: list[tuple[Any, ...]] = []
            if self.password is not None:
                hello.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
            if self.db:
                hello.append(("SELECT", self.db))
            if hello:
                for reply in await self._send(proto, hello):
                    if isinstance(reply, ReplyError):
                        proto._fail(ConnectionError(f"Redis refused the connection setup: {reply}"))
                        raise ConnectionError(f"Redis refused the connection setup: {reply}")
            self._proto = proto
            return proto

    async def _send(self, proto: _Protocol, commands: list[tuple[Any, ...]]) -> list[Any]:
        assert proto.transport is not None
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        proto.waiters.extend(futures)
        proto.queue(b"".join([hiredis.pack_command(c) for c in commands]))
        try:
            async with asyncio.timeout(self.timeout):
                return [await f for f in futures]
        except TimeoutError:
            proto._fail(ConnectionError("Redis did not answer in time"))  # replies may be out of step now
            raise

    async def execute(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """The commands' replies, in order (error replies as ReplyError values). Raises
        ConnectionError or TimeoutError when Redis cannot be reached or does not answer."""
        return await self._send(await self._connection(), commands)

    async def close(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()
