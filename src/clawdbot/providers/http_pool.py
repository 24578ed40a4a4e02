"""The keep-alive connection pool of one upstream origin (see http_client.py for the protocol).

Two bounds, on purpose different:

- `max_idle` (a service's `max_pool`): idle keep-alive connections kept for reuse. One released
  beyond it closes the longest-idle connection. It never limits requests in flight.
- `max_open`: connections open at once, idle ones included. `None` (no ceiling): a connection for
  every request in flight; requests are bounded and queued by the service's limiter
  (routing/limiter.py), so the pool never becomes a second, silent queue.

A request that finds `max_open` reached waits, FIFO, at most `max_queue` of them, for at most
`queue_timeout` seconds (the limiter's rules); the wait is counted (`PoolStats`, the response's
`pool_wait`), and giving up raises PoolExhausted: local overload, never the upstream's failure.
The gateway's own calls (health checks) pass `wait=False`: they open a connection beyond the
ceiling rather than wait, so a service busy with requests is never reported down for it.

Sending a request again (the rule; a model may generate, and bill, twice otherwise). A request is
re-sent on a fresh connection, once, only when it provably never reached the server:

- the connection it was handed was already closed (nothing was written), or
- the write failed at once (the server had reset the connection: not one byte left), or
- the request is replayable (GET, HEAD: the gateway's model lists and probes) and a reused
  keep-alive connection closed before the first byte of the response.

A POST that was written and then met a closed connection is never re-sent here: the client gets a
502 that says so, and only the router's configured retries and fallbacks (routing.md) may try it
again. Idle connections are checked before reuse (closed, past KEEPALIVE_EXPIRY, or readable:
an idle connection with bytes or an end-of-file waiting is dead) so that case stays rare."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import select
from typing import Any
from urllib.parse import urlsplit

from clawdbot.config.upstream import tls_context
from clawdbot.providers.http_client import (
    DEFAULT_LIMIT,
    ConnectError,
    Connection,
    ConnectTimeout,
    PoolExhausted,
    RemoteDisconnected,
    Response,
)
from clawdbot.providers.http_transport import Direct, Opener, ProxyRefused

KEEPALIVE_EXPIRY = 4.0  # seconds; below the 5 s idle timeout of uvicorn (vLLM) and most servers
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE)
_POLL = select.poll()  # _quiet()'s: one fd at a time, on the event loop's thread


class PoolStats:
    """Counters of a service's connections; they outlive a pool (a new endpoint builds a new one)."""

    __slots__ = ("opened", "refused", "waits")

    def __init__(self) -> None:
        self.opened = 0  # connections opened
        self.waits = 0  # requests that had to wait for a connection
        self.refused = 0  # requests that got none (PoolExhausted)


class Pool:
    """Connections to one origin; see the module's docstring for its two bounds."""

    def __init__(self, url: str, *, max_idle: int, max_open: int | None, connect_timeout: float,
                 max_queue: int = 64, queue_timeout: float = 10.0, stats: PoolStats | None = None,
                 opener: Opener | None = None, limit: int = DEFAULT_LIMIT) -> None:
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
        self.max_idle = max(1, max_idle)
        self.max_open = None if max_open is None else max(1, max_open)
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.connect_timeout = connect_timeout
        self.stats = stats or PoolStats()
        self.limit = limit  # body bytes a response may hold at once (Response.limit)
        self.opener: Opener = opener or Direct(self.host, self.port, tls_context(None) if self.tls else None)
        self._idle: collections.deque[Connection] = collections.deque()  # most recently used on the right
        self._waiters: collections.deque[asyncio.Future[Connection | None]] = collections.deque()
        self.size = 0  # open or opening connections, idle ones included
        self.closed = False

    def snapshot(self) -> dict[str, Any]:
        st = self.stats
        return {"open": self.size, "idle": len(self._idle), "waiting": len(self._waiters), "waits": st.waits,
                "refused": st.refused, "opened": st.opened, "max_idle": self.max_idle, "max_open": self.max_open}

    async def request(self, head: bytes, body: bytes | None, first_byte: float, idle: float | None,
                      wait: bool = True, replayable: bool = False) -> Response:
        """Send one request (`head` ends with the blank line) and wait for the response headers.
        The headers and the first body bytes must come within `first_byte` seconds of sending;
        after that at most `idle` seconds may pass between body bytes (Response.watch). When it is
        sent twice: the module's docstring."""
        waited = 0.0
        for attempt in (0, 1):
            conn, w = await self.acquire(wait)
            waited += w
            reused = conn.served > 0
            conn.served += 1
            resp = conn.resp = Response(conn)
            resp.limit = self.limit
            resp.pool_wait = waited
            transport = conn.transport
            assert transport is not None
            if conn.closed or transport.is_closing():  # closed since it was handed over: nothing written
                resp.close()
                if attempt == 0:
                    continue
                raise RemoteDisconnected("the connection closed before the request was sent")
            deadline = conn.loop.time() + first_byte
            transport.write(head + body if body else head)
            unsent = transport.is_closing()  # the write failed at once: no byte of it left
            try:
                await resp.wait_headers(deadline)
            except RemoteDisconnected:
                resp.close()
                if attempt == 0 and (unsent or (reused and replayable)):
                    continue
                raise
            except BaseException:
                resp.close()
                raise
            resp.watch(deadline, idle)
            return resp
        raise AssertionError("unreachable")

    async def acquire(self, wait: bool = True) -> tuple[Connection, float]:
        """A connection, and the seconds spent waiting for one (0.0 unless the pool was at max_open;
        with `wait=False` it never waits: it opens one beyond the ceiling)."""
        if self.closed:
            raise ConnectError("the client is closed")
        loop = asyncio.get_running_loop()
        idle = self._idle
        now = loop.time()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_EXPIRY:
                assert conn.transport is not None
                if not conn.transport.is_closing() and _quiet(conn.fd):
                    return conn, 0.0
            self.drop(conn)
        waited = 0.0
        if wait and self.max_open is not None and self.size >= self.max_open:
            got = await self._wait(now)
            waited = loop.time() - now
            if got is not None:
                return got, waited
            # else a connection closed and its slot was handed to us: open one in its place
        else:
            self.size += 1
        try:
            conn = await self._connect()
        except BaseException:
            self._free_slot()
            raise
        self.stats.opened += 1
        return conn, waited

    async def _wait(self, since: float) -> Connection | None:
        """In line for a released connection, or (None) for the slot of a closed one."""
        waiters = self._waiters
        if len(waiters) >= self.max_queue:
            self.stats.refused += 1
            raise PoolExhausted(f"all {self.max_open} upstream connections are busy and "
                                f"{len(waiters)} requests are already waiting for one")
        self.stats.waits += 1
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Connection | None] = loop.create_future()
        waiters.append(fut)
        timer = loop.call_at(since + self.queue_timeout, _expire_wait, fut, self.max_open, self.queue_timeout)
        try:
            return await fut
        except PoolExhausted as exc:
            self.stats.refused += 1
            exc.waited = loop.time() - since
            raise
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                conn = fut.result()  # handed over just as we gave up: pass it on
                if conn is not None:
                    self.put(conn)
                else:
                    self._free_slot()
            raise
        finally:
            timer.cancel()
            if fut.cancelled() or fut.exception() is not None:  # not handed over: still in line
                with contextlib.suppress(ValueError):
                    waiters.remove(fut)

    async def _connect(self) -> Connection:
        try:
            async with asyncio.timeout(self.connect_timeout):
                conn = await self.opener.open(lambda: Connection(self))
        except ProxyRefused as exc:
            raise ConnectError(str(exc)) from None
        except TimeoutError:
            raise ConnectTimeout(f"could not connect to {self.authority} within {self.connect_timeout:g}s") from None
        except OSError as exc:
            if exc.errno in _OUT_OF_FDS:  # our limit, not the upstream's failure
                self.stats.refused += 1
                raise PoolExhausted(f"the gateway is out of file descriptors ({exc.strerror})") from exc
            raise ConnectError(f"could not connect to {self.authority}: {exc}") from exc
        return conn

    def put(self, conn: Connection) -> None:
        if self.closed:
            self.drop(conn)
            return
        if self._handoff(conn):
            return
        conn.idle_since = conn.loop.time()
        idle = self._idle
        idle.append(conn)
        if len(idle) > self.max_idle:
            self.drop(idle.popleft())  # the longest idle: the first to expire anyway

    def forget(self, conn: Connection) -> None:
        """An idle connection the server closed."""
        try:
            self._idle.remove(conn)
        except ValueError:
            return
        self._free_slot()

    def drop(self, conn: Connection) -> None:
        conn.close()
        self._free_slot()

    def _free_slot(self) -> None:
        self.size -= 1
        self._handoff(None)

    def _handoff(self, conn: Connection | None) -> bool:
        """Give `conn`, or (None) the slot of a connection just closed, to the first in line: it
        is theirs, so a request arriving meanwhile cannot take it (FIFO)."""
        waiters = self._waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                if conn is None:
                    self.size += 1
                w.set_result(conn)
                return True
        return False

    def close(self) -> None:
        self.closed = True
        while self._waiters:  # first: a connection dropped below must not hand its slot to one of them
            w = self._waiters.popleft()
            if not w.done():
                w.set_exception(ConnectError("the client was closed"))
        while self._idle:
            self.drop(self._idle.pop())


def _quiet(fd: int) -> bool:
    """Nothing to read on an idle connection: no end-of-file, no stray bytes (either means it is
    dead). A zero-timeout poll(2), about a microsecond; -1 (no socket) passes."""
    if fd < 0:
        return True
    _POLL.register(fd, select.POLLIN)
    try:
        return not _POLL.poll(0)
    finally:
        _POLL.unregister(fd)


def _expire_wait(fut: asyncio.Future[Connection | None], size: int | None, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(PoolExhausted(f"all {size} upstream connections stayed busy for {timeout:g}s"))
