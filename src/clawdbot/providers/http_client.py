"""A lean HTTP/1.1 client for upstream calls: asyncio Protocols, httptools' response parser and a
bounded keep-alive pool per origin. Only what a gateway needs (no redirects or cookies; proxies and
TLS are the openers' business, http_transport.py); aiohttp's general-purpose client cost ~3x more
CPU per proxied request.

Bounds on what an upstream can make the gateway hold: the status line and headers together at most
MAX_HEAD bytes, MAX_HEADERS fields and MAX_INTERIM 1xx responses before the final one; a body at most
`Response.limit` bytes buffered at once (after gzip/deflate decoding: a compressed bomb stops at
the limit, not at the end of the input).

Lifecycle: `Pool.request()` (http_pool.py) returns a `Response` once its headers arrived. The
caller reads the body (`read()` or `read_chunk()`) and then calls `release()`, which returns the
connection to the pool only if the response was read to its end; `close()` (or an early
`release()`) drops it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import zlib
from typing import Protocol, overload

import httptools

HIGH_WATER = 256 * 1024  # body bytes buffered for a slow consumer before the socket is paused
MAX_HEAD = 64 * 1024  # bytes of status line and headers, interim (1xx) responses included
MAX_HEADERS = 128  # header fields of one response
MAX_INTERIM = 16  # 1xx responses before the final one
DEFAULT_LIMIT = 64 * 1024 * 1024  # body bytes held at once (a service's max_response_bytes)


class TransportError(Exception):
    """Base of the client's own errors; providers/http.py maps them to gateway errors."""


class ConnectError(TransportError):  # refused, unreachable, DNS, TLS handshake
    pass


class ConnectTimeout(TransportError, TimeoutError):
    pass


class PoolExhausted(TransportError):
    """No connection to be had: every one stayed busy for the wait allowed, too many requests were
    waiting already, or the process is out of file descriptors. Local overload, not the upstream's
    fault. `waited`: the seconds this request spent waiting."""

    def __init__(self, message: str, waited: float = 0.0) -> None:
        super().__init__(message)
        self.waited = waited


class ReadTimeout(TransportError, TimeoutError):
    pass


class RemoteProtocolError(TransportError):  # the upstream does not speak HTTP/1.1
    pass


class IncompleteResponse(TransportError):  # closed before the response was complete
    pass


class ResponseTooLarge(TransportError):
    """The body (decoded) outgrew `Response.limit` while it was held; the connection is dropped."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the response body exceeds {limit} bytes (max_response_bytes)")
        self.limit = limit


class RemoteDisconnected(IncompleteResponse):
    """Closed before any byte of the response: a reused keep-alive connection the server had just
    closed, the one case worth one retry on a fresh connection."""


class Headers:
    """Response headers: case-insensitive `get`, `[]` and `in`; the first value of a repeated name."""

    __slots__ = ("_d", "raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.raw = raw
        d: dict[str, str] = {}
        for k, v in raw:
            d.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
        self._d = d

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    def get(self, name: str, default: str | None = None) -> str | None:
        return self._d.get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return self._d[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._d

    def __repr__(self) -> str:
        return f"Headers({self._d!r})"


class Pool(Protocol):
    """What a connection needs from the pool that owns it (http_pool.Pool): the client sits below
    the pool and never imports it."""

    def put(self, conn: Connection) -> None: ...

    def drop(self, conn: Connection) -> None: ...

    def forget(self, conn: Connection) -> None: ...


class Connection(asyncio.Protocol):
    """One keep-alive TCP (or TLS) connection; feeds the bytes to the response in flight."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        # the loop it was opened on, kept: asyncio.get_running_loop() is a system call (getpid) each time
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.resp: Response | None = None
        self.closed = False
        self.served = 0  # responses started on this connection
        self.idle_since = 0.0
        self.fd = -1  # the socket's descriptor (-1: none, as in the tests' scripted transports)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self.fd = sock.fileno()
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        resp = self.resp
        if resp is None or resp.parser is None:  # bytes nobody asked for: the stream is out of sync
            self.close()
            return
        resp.got_bytes = True
        if resp.status == 0:  # in a head: count it before the parser holds it
            end = data.find(b"\r\n\r\n")
            resp.head_bytes += len(data) if end < 0 else end + 4
            if resp.head_bytes > MAX_HEAD:
                resp.fail(RemoteProtocolError(f"the response's status line and headers exceed {MAX_HEAD} bytes"))
                self.close()
                return
        try:
            resp.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            resp.fail(RemoteProtocolError(f"malformed HTTP response: {exc}"))
            self.close()
            return
        if resp._error is not None:
            self.close()

    def eof_received(self) -> bool:
        return False  # half-closed is closed: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        closed, self.closed = self.closed, True
        if self.resp is not None:
            self.resp.lost(exc)
        elif not closed:  # the server closed it while idle: out of the pool now, not at the next acquire
            self.pool.forget(self)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def pause(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.pause_reading()

    def resume(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.resume_reading()


class Response:
    """One response; also the httptools parser's callback target."""

    __slots__ = ("_body_seen", "_buffered", "_chunks", "_conn", "_decoder", "_done", "_error", "_idle",
                 "_idle_timer", "_interim", "_last", "_loop", "_paused", "_raw", "_read_all", "_timer", "_waiter",
                 "got_bytes", "head_bytes", "headers", "keep_alive", "limit", "parser", "pool_wait", "status",
                 "until_close")

    def __init__(self, conn: Connection) -> None:
        self._conn: Connection | None = conn
        self.parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: Headers = _NO_HEADERS
        self.keep_alive = False
        self.until_close = False
        self.got_bytes = False
        self.head_bytes = 0  # bytes of status lines and headers received (data_received)
        self._interim = 0  # 1xx responses before this one
        self.limit = DEFAULT_LIMIT
        self.pool_wait = 0.0  # seconds the request waited for a connection (the pool was at its ceiling)
        self._raw: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._read_all = False
        self._decoder: zlib._Decompress | None = None
        self._idle: float | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last = 0.0
        self._body_seen = False
        self._loop = conn.loop

    # -- parser callbacks ----------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self._raw) >= MAX_HEADERS:
            self.fail(RemoteProtocolError(f"the response has more than {MAX_HEADERS} header fields"))
            return
        self._raw.append((name, value))

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        status = self.parser.get_status_code()
        if self._error is not None:
            return
        if status < 200:  # 1xx: an interim response; the real one follows
            self._raw = []
            self._interim += 1
            if self._interim > MAX_INTERIM:
                self.fail(RemoteProtocolError(f"more than {MAX_INTERIM} interim (1xx) responses"))
            return
        self.headers = headers = Headers(self._raw)
        self.keep_alive = self.parser.should_keep_alive()
        self.until_close = (status not in (204, 304) and "content-length" not in headers
                            and "transfer-encoding" not in headers)
        enc = headers.get("content-encoding")
        if enc in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self._decoder = zlib.decompressobj()
        self.status = status
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._idle_timer is not None:
            if self._body_seen:
                self._last = self._loop.time()
            else:  # the first body bytes: the first-byte deadline is met, the idle gap starts now
                self._first_body(self._loop)
        self._body_seen = True
        if self._error is not None:
            return
        if self._decoder is not None:
            room = self.limit - self._buffered
            try:
                body = self._decoder.decompress(body, room + 1)  # never more than one byte past the limit
            except zlib.error:
                self._give_up(RemoteProtocolError("the response's compressed body is corrupt"))
                return
            if not body:
                return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > self.limit:
            self._give_up(ResponseTooLarge(self.limit))
            return
        if self._buffered > HIGH_WATER and not self._read_all and not self._paused and self._conn:
            self._paused = True
            self._conn.pause()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status == 0:  # the end of a 1xx
            return
        if self._error is not None:
            return
        if self._decoder is not None:
            try:
                tail = self._decoder.flush()
            except zlib.error:
                self._give_up(RemoteProtocolError("the response's compressed body is corrupt"))
                return
            if tail:
                self._chunks.append(tail)
        self._done = True
        self.parser = None
        if self._timer is not None:
            self._timer.cancel()
        self._stop_idle()
        self._wake()

    # -- events from the connection ------------------------------------------------------------

    def lost(self, exc: Exception | None) -> None:
        if self._done:
            return
        if self.status and self.until_close and exc is None:
            self.keep_alive = False
            self.on_message_complete()
            return
        if self.status or self.got_bytes:
            self.fail(IncompleteResponse(f"connection closed before the response was complete ({exc})"))
        else:
            self.fail(RemoteDisconnected(f"connection closed before the response ({exc})"))

    def fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._stop_idle()
        self._wake()

    def _give_up(self, exc: TransportError) -> None:
        """A response that cannot be read on: keep nothing more of it, stop reading its socket."""
        self._chunks, self._buffered = [], 0
        self.fail(exc)
        if self._conn is not None:
            self._conn.pause()

    def watch(self, first_deadline: float, idle: float | None) -> None:
        """Fail with ReadTimeout when no body bytes came by `first_deadline` (loop time), or, once
        they did, when the upstream then sends nothing for `idle` seconds (None: no limit).

        Model servers send their headers at once and the first token after the prompt is read, so
        the timer first waits for the first body bytes, is re-armed once when they come, and is
        then re-armed lazily: a chunk costs a clock read, not a timer. A consumer that is behind
        (bytes buffered, reading paused) never makes the upstream look idle."""
        if self._done or self._idle_timer is not None:
            return
        loop = self._loop
        self._idle = idle
        if not self._body_seen:
            self._idle_timer = loop.call_at(first_deadline, self._idle_check)
        elif idle is not None:
            self._last = loop.time()
            self._idle_timer = loop.call_at(self._last + idle, self._idle_check)

    def _first_body(self, loop: asyncio.AbstractEventLoop) -> None:
        self._stop_idle()
        idle = self._idle
        if idle is not None:
            self._last = loop.time()
            self._idle_timer = loop.call_at(self._last + idle, self._idle_check)

    def _idle_check(self) -> None:
        loop = self._loop
        self._idle_timer = None
        if self._done or self._error is not None:
            return
        if not self._body_seen:
            self.fail(ReadTimeout("no response body within the first-byte timeout"))
            return
        idle = self._idle
        assert idle is not None  # without an idle limit the timer ends at the first body bytes
        now = loop.time()
        if self._paused or (self._chunks and not self._read_all):  # the consumer is behind, not the upstream
            self._idle_timer = loop.call_at(now + idle, self._idle_check)
        elif now - self._last < idle:
            self._idle_timer = loop.call_at(self._last + idle, self._idle_check)
        else:
            self.fail(ReadTimeout(f"no data for {idle:g}s (idle timeout)"))

    def _stop_idle(self) -> None:
        t = self._idle_timer
        if t is not None:
            self._idle_timer = None
            t.cancel()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _headers_expired(self) -> None:
        self.fail(ReadTimeout("no response headers within the first-byte timeout"))

    def _expired(self) -> None:
        self.fail(ReadTimeout("the response did not complete within the total timeout"))

    async def _wait(self) -> None:
        fut = self._waiter = self._loop.create_future()
        try:
            await fut
        finally:
            self._waiter = None

    # -- the caller's side ----------------------------------------------------------------------

    async def wait_headers(self, loop_deadline: float) -> None:
        loop = self._loop
        while self.status == 0:
            if self._error is not None:
                raise self._error
            timer = loop.call_at(loop_deadline, self._headers_expired)
            try:
                await self._wait()
            finally:
                timer.cancel()

    def _arm(self, loop_deadline: float) -> None:
        if self._timer is None and not self._done:
            self._timer = self._loop.call_at(loop_deadline, self._expired)

    async def read(self, loop_deadline: float) -> bytes:
        """The whole body (decoded), once it has fully arrived."""
        if not self._done:
            self._read_all = True
            if self._paused:
                self._paused = False
                if self._conn is not None:
                    self._conn.resume()
            self._arm(loop_deadline)
            while not self._done:
                if self._error is not None:
                    raise self._error
                await self._wait()
        chunks = self._chunks
        self._chunks, self._buffered = [], 0
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def read_chunk(self, loop_deadline: float) -> bytes:
        """Everything buffered so far (waiting for more if nothing is); b"" at the end."""
        while not self._chunks:
            if self._done:
                return b""
            if self._error is not None:
                raise self._error
            self._arm(loop_deadline)
            await self._wait()
        chunks = self._chunks
        self._chunks, self._buffered = [], 0
        if self._paused:
            self._paused = False
            if self._conn is not None:
                self._conn.resume()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @property
    def complete(self) -> bool:
        return self._done

    def release(self) -> None:
        """Back to the pool if the response was read to its end; otherwise the connection is closed."""
        self._let_go(reusable=True)

    def close(self) -> None:
        """Drop the connection (the response may be unread)."""
        self._let_go(reusable=False)

    def _let_go(self, reusable: bool) -> None:
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None  # a cancelled uvloop timer still holds its callback: self
        self._stop_idle()
        # the parser holds bound methods of this response: a reference cycle, which the collector
        # would have to find (and, for a response alive during a full collection, api/heap.py keeps)
        self.parser = None
        conn.resp = None
        if reusable and self._done and self.keep_alive and self._error is None and not conn.closed:
            if self._paused:  # the end came in while a big body held reading paused: reading resumes
                self._paused = False
                conn.resume()
            conn.pool.put(conn)
        else:
            conn.pool.drop(conn)
        self._error = None  # raised by now: its traceback's frames hold this response (a cycle)

    def __del__(self) -> None:  # a response nobody released must not hold a pool slot forever
        conn = self._conn
        if conn is not None:
            self._conn = None
            with contextlib.suppress(Exception):  # the loop may be gone at interpreter exit
                conn.pool.drop(conn)


_NO_HEADERS = Headers([])
