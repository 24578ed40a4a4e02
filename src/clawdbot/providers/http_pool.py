"""The keep-alive connection pool of one upstream origin (see http_client.py for the protocol)."""

from __future__ import annotations

import asyncio
import collections
import ssl
from urllib.parse import urlsplit

from clawdbot.providers.http_client import (
    ConnectError,
    Connection,
    ConnectTimeout,
    PoolTimeout,
    RemoteDisconnected,
    Response,
)

KEEPALIVE_EXPIRY = 4.0  # seconds; below the 5 s idle timeout of uvicorn (vLLM) and most servers


class Pool:
    """Keep-alive connections to one origin, at most `max_size` open; a request waits for a free
    one until its first-byte deadline."""

    def __init__(self, url: str, max_size: int, connect_timeout: float) -> None:
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.tls = u.scheme == "https"
        self.host = u.hostname
        self.port = u.port or (443 if self.tls else 80)
        default = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = host if self.port == default else f"{host}:{self.port}"
        self.prefix = u.path.rstrip("/")
        self.max_size = max(1, max_size)
        self.connect_timeout = connect_timeout
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if self.tls else None
        self._idle: list[Connection] = []
        self._waiters: collections.deque[asyncio.Future[Connection | None]] = collections.deque()
        self.size = 0  # open or opening connections, idle ones included
        self.closed = False

    async def request(self, head: bytes, body: bytes | None, first_byte: float, idle: float | None) -> Response:
        """Send one request (`head` ends with the blank line) and wait for the response headers.
        The headers and the first body bytes must come within `first_byte` seconds of sending;
        after that at most `idle` seconds may pass between body bytes (Response.watch)."""
        loop = asyncio.get_running_loop()
        wait_deadline = loop.time() + first_byte
        for attempt in (0, 1):
            conn = await self.acquire(wait_deadline)
            reused = conn.served > 0
            conn.served += 1
            resp = conn.resp = Response(conn)
            assert conn.transport is not None
            deadline = loop.time() + first_byte
            conn.transport.write(head + body if body else head)
            try:
                await resp.wait_headers(deadline)
            except RemoteDisconnected:
                resp.close()
                if reused and attempt == 0:
                    continue
                raise
            except BaseException:
                resp.close()
                raise
            resp.watch(deadline, idle)
            return resp
        raise AssertionError("unreachable")

    async def acquire(self, deadline: float) -> Connection:
        loop = asyncio.get_running_loop()
        while True:
            if self.closed:
                raise ConnectError("the client is closed")
            idle = self._idle
            now = loop.time()
            while idle:
                conn = idle.pop()
                if not conn.closed and now - conn.idle_since < KEEPALIVE_EXPIRY:
                    assert conn.transport is not None
                    if not conn.transport.is_closing():
                        return conn
                self.drop(conn)
            if self.size < self.max_size:
                self.size += 1
                try:
                    return await self._connect(deadline)
                except BaseException:
                    self.size -= 1
                    self._handoff(None)
                    raise
            got = await self._wait_for_slot(deadline)
            if got is not None:
                return got

    async def _wait_for_slot(self, deadline: float) -> Connection | None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Connection | None] = loop.create_future()
        self._waiters.append(fut)
        timer = loop.call_at(deadline, _expire_wait, fut, self.max_size)
        try:
            return await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                conn = fut.result()  # handed over just as we gave up: pass it on
                if conn is not None:
                    self.put(conn)
                else:
                    self._handoff(None)
            raise
        finally:
            timer.cancel()

    async def _connect(self, deadline: float) -> Connection:
        loop = asyncio.get_running_loop()
        timeout = max(0.0, min(self.connect_timeout, deadline - loop.time()))
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: Connection(self), self.host, self.port, ssl=self._ssl,
                    server_hostname=self.host if self._ssl else None,
                )
        except TimeoutError:
            raise ConnectTimeout(f"could not connect to {self.authority} within {timeout:g}s") from None
        except OSError as exc:
            raise ConnectError(f"could not connect to {self.authority}: {exc}") from exc
        return conn

    def put(self, conn: Connection) -> None:
        if self.closed:
            self.drop(conn)
            return
        conn.idle_since = asyncio.get_running_loop().time()
        if not self._handoff(conn):
            self._idle.append(conn)

    def drop(self, conn: Connection) -> None:
        conn.close()
        self.size -= 1
        self._handoff(None)

    def _handoff(self, conn: Connection | None) -> bool:
        waiters = self._waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(conn)
                return True
        return False

    def close(self) -> None:
        self.closed = True
        while self._idle:
            self.drop(self._idle.pop())
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_exception(ConnectError("the client was closed"))


def _expire_wait(fut: asyncio.Future[Connection | None], size: int) -> None:
    if not fut.done():
        fut.set_exception(PoolTimeout(f"all {size} upstream connections stayed busy until the deadline"))
