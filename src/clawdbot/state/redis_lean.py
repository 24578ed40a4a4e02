"""The process's Redis connection: one long-lived pipelined connection, commands packed by hiredis,
replies read with hiredis's C parser. Everything that keeps shared state (rate limits, budgets,
breakers, key invalidation, the shared caches) goes through it (state/redis_client.py is the
command API on top).

Why not redis-py: importing it costs ~20 MiB of resident memory (its cluster, command and
telemetry modules load with the package) and ~200 us of CPU per pipeline on the request path
(pool checkout, command packing in Python, its retry and response machinery). hiredis (kept by
the Redis project) does the wire format; this module only connects, writes and matches replies.

Replies come back in the order commands were sent, so every command gets a future in a FIFO and
`data_received` resolves them as hiredis completes replies. The commands of one event-loop turn are
written together (concurrent requests share one write and one wake-up). A caller that is cancelled
or times out leaves its futures in the FIFO (their replies still arrive and are consumed in
order); a connection that fails, or whose replies stop within the timeout, is dropped and reopened
at the next call. Error replies are returned as `ReplyError` values for the caller to judge.

A subscriber (`subscriber()`) is a connection of its own in pub/sub mode: pushed messages go to a
queue instead of the FIFO.

URLs: redis://[user:password@]host[:port][/db], rediss:// (TLS, the system's CAs;
`?ssl_cert_reqs=none` turns verification off, `ssl_ca_certs=/path` adds a CA bundle), and
unix:///path/to/socket[?db=N]."""

from __future__ import annotations

import asyncio
import collections
import ssl
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

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
        # pub/sub mode: every reply is a pushed message (or a confirmation), queued here
        self.pushed: asyncio.Queue[Any] | None = None

    @property
    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

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
            if waiters:
                fut = waiters.popleft()
                if not fut.done():
                    fut.set_result(reply)
            elif self.pushed is not None:
                self.pushed.put_nowait(reply)
            else:  # a reply nobody asked for: the stream is out of step
                self._fail(ConnectionError("Redis sent a reply to no command"))
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError(f"Redis connection lost ({exc or 'closed'})"))

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_exception(exc)
        if self.pushed is not None:
            self.pushed.put_nowait(exc)
        if self.transport is not None:
            self.transport.abort()


class Target:
    """Where a Redis is and how to log in: parsed from a URL once."""

    __slots__ = ("db", "host", "password", "path", "port", "ssl", "username")

    def __init__(self, host: str | None = None, port: int = 6379, db: int = 0, username: str | None = None,
                 password: str | None = None, path: str | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.host, self.port, self.db, self.path = host, port, db, path
        self.username, self.password = username, password
        self.ssl = tls

    @classmethod
    def from_url(cls, url: str) -> Target:
        """Raises ValueError for a URL it cannot use; the message never repeats the URL."""
        try:
            u = urlsplit(url)
            port = u.port or 6379
        except ValueError:
            raise ValueError("the Redis URL cannot be parsed (e.g. redis://127.0.0.1:6379/0)") from None
        query = {k: v[-1] for k, v in parse_qs(u.query).items()}
        user = unquote(u.username) if u.username else None
        password = unquote(u.password) if u.password else None
        db_text = query.get("db") or u.path.strip("/")
        if u.scheme == "unix":
            db_text = query.get("db", "0")
        if db_text and not db_text.isdigit():
            raise ValueError("the Redis URL's database must be a number (redis://host:6379/0)")
        db = int(db_text or 0)
        if u.scheme == "unix":
            if not u.path:
                raise ValueError("a unix:// Redis URL needs the socket's path (unix:///run/redis.sock)")
            return cls(db=db, username=user, password=password, path=unquote(u.path))
        if u.scheme not in ("redis", "rediss") or not u.hostname:
            raise ValueError("the Redis URL must be redis://host:port/db, rediss://... or unix:///path")
        tls = None
        if u.scheme == "rediss":
            tls = ssl.create_default_context(cafile=query.get("ssl_ca_certs"))
            if query.get("ssl_cert_reqs", "required").lower() == "none":
                tls.check_hostname = False
                tls.verify_mode = ssl.CERT_NONE
        return cls(u.hostname, port, db, user, password, tls=tls)

    async def connect(self, limit: float, client_name: str | None) -> _Protocol:
        """A new connection, logged in, its database selected, named (CLIENT SETNAME)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(limit):
            if self.path is not None:
                _, proto = await loop.create_unix_connection(_Protocol, self.path)
            else:
                assert self.host is not None
                _, proto = await loop.create_connection(_Protocol, self.host, self.port, ssl=self.ssl)
            try:
                await self._hello(proto, client_name)
            except BaseException:
                proto._fail(ConnectionError("Redis connection setup failed"))
                raise
        return proto

    async def _hello(self, proto: _Protocol, client_name: str | None) -> None:
        hello: list[tuple[Any, ...]] = []
        if self.password is not None:
            hello.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if self.db:
            hello.append(("SELECT", self.db))
        if client_name:
            hello.append(("CLIENT", "SETNAME", client_name))
        if not hello:
            return
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in hello]
        proto.waiters.extend(futures)
        proto.queue(b"".join([hiredis.pack_command(c) for c in hello]))
        for fut in futures:
            reply = await fut
            if isinstance(reply, ReplyError):  # Redis's own text (it names no secret)
                raise ConnectionError(f"Redis refused the connection setup: {reply}")


class LeanRedis:
    def __init__(self, host: str, port: int = 6379, db: int = 0, username: str | None = None,
                 password: str | None = None, timeout: float = 5.0, *, target: Target | None = None,
                 client_name: str | None = None) -> None:
        self.target = target or Target(host, port, db, username, password)
        self.timeout = timeout
        self.client_name = client_name
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    @classmethod
    def from_url(cls, url: str, timeout: float = 5.0, client_name: str | None = None) -> LeanRedis:
        """Raises ValueError for a URL it cannot use."""
        return cls("", timeout=timeout, target=Target.from_url(url), client_name=client_name)

    async def _connection(self) -> _Protocol:
        proto = self._proto
        if proto is not None and proto.usable:
            return proto
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            proto = self._proto
            if proto is not None and proto.usable:
                return proto
            self._proto = await self.target.connect(self.timeout, self.client_name)
            return self._proto

    async def _send(self, proto: _Protocol, commands: list[tuple[Any, ...]]) -> list[Any]:
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
        ConnectionError (an OSError) or TimeoutError when Redis cannot be reached or does not answer."""
        return await self._send(await self._connection(), commands)

    async def subscriber(self) -> Subscriber:
        """A connection of its own for pub/sub (closed by its owner)."""
        proto = await self.target.connect(self.timeout, self.client_name)
        proto.pushed = asyncio.Queue()
        return Subscriber(proto)

    async def close(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()


class Subscriber:
    """A pub/sub connection: `send` (SUBSCRIBE, PING) without waiting for a reply; `next` the next
    pushed reply (a list such as [b"message", channel, data]), None when none came `within` seconds."""

    def __init__(self, proto: _Protocol) -> None:
        self._proto = proto

    def send(self, *command: Any) -> None:
        if not self._proto.usable:
            raise ConnectionError("Redis subscriber connection lost")
        self._proto.queue(hiredis.pack_command(command))

    async def next(self, within: float) -> Any:
        pushed = self._proto.pushed
        assert pushed is not None
        try:
            async with asyncio.timeout(within):
                item = await pushed.get()
        except TimeoutError:
            return None
        if isinstance(item, Exception):
            pushed.put_nowait(item)  # every later call fails too
            raise item
        return item

    def close(self) -> None:
        if self._proto.transport is not None:
            self._proto.transport.close()
