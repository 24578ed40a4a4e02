"""uvicorn's httptools protocol with limits on the request head.

httptools collects a header value (and uvicorn the URL) by appending every fragment that arrives,
with no limit of its own: a 160 MiB header from an unauthenticated client held the event loop for
seconds. This subclass counts the head's bytes as they arrive and refuses, before the app runs:
414 for a request target over `max_url_bytes`, 431 for a head over `max_header_bytes` or with more
than `max_headers` lines (a single header is bounded by the head's limit). The WebSocket upgrade
request goes through here too.

Time is bounded as well (slowloris): uvicorn closes a kept-alive connection idle between requests,
but not one that sends a head, or a body, a byte now and then, nor a new one that sends nothing.
A request's head must arrive within `head_timeout` seconds of its first byte (a new connection's
first byte within that of connecting; a pipelined head's time starts when the answer before it
has gone out, and one that came in the same read as the request before it is bounded by uvicorn's
keep-alive timeout instead), and its body must not pause longer than `body_timeout`
between two reads (nginx's client_header_timeout and client_body_timeout): else 408 and the
connection closes. The connections reading a request are in one set, swept once a second while
it holds any, which also sets each deadline (to the second): a request costs a set add and discard,
not a timer nor a clock read."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import httptools
import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from clawdbot.config.schema import Server

_REASONS = {408: b"Request Timeout", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}
LINGER_S = 2.0  # seconds a refused connection drops what still arrives before it closes
TIMED_OUT = "clawdbot.timed_out"  # scope key: why the body's read ended
SWEEP_S = 1.0  # how often the connections reading a request are checked for a missed deadline


class HeadTooLarge(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Reading:
    """The connections reading a request (its head or its body), each with its deadline."""

    def __init__(self) -> None:
        self.conns: set[BoundedHttpToolsProtocol] = set()
        self.handle: asyncio.TimerHandle | None = None

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.handle is None:
            self.handle = loop.call_later(SWEEP_S, self.sweep, loop)

    def sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Times out the connections past their deadline, and sets the deadline of those that
        started a head or a body (or got more of one) since the last sweep: the request path only
        resets it to 0, never reads the clock, so the limits hold to the sweep's second."""
        now = loop.time()
        late = []
        for c in self.conns:
            if not c.deadline:
                c.deadline = now + (c.head_timeout if c._in_head else c.body_timeout)
            elif c.deadline <= now:
                late.append(c)
        for c in late:
            c.timed_out()
        self.handle = loop.call_later(SWEEP_S, self.sweep, loop) if self.conns else None


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_url = 8 * 1024
    max_head = 64 * 1024
    max_headers = 100
    head_timeout = 30.0
    body_timeout = 60.0
    reading = Reading()  # bounded_protocol() gives each server its own

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # between a request's end (or the connection's start) and its next head's end
        self._head_bytes = 0  # bytes received meanwhile
        self._refused = False
        self._reading = False  # in `reading`: a head or a body is on its way
        self.deadline = 0.0  # ... and by when it must have arrived (the body: its next bytes); 0: the sweep sets it

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._read()  # a connection that never asks anything is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_reading()
        super().connection_lost(exc)

    def _read(self) -> None:
        self.deadline = 0.0
        if not self._reading:
            self._reading = True
            self.reading.conns.add(self)
            self.reading.watch(self.loop)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self.reading.conns.discard(self)

    def timed_out(self) -> None:
        if self._in_head and self.cycle is not None and not self.cycle.response_complete:
            # a pipelined head, waiting while the last answer still goes out (uvicorn stops reading
            # meanwhile): the wait is the gateway's, not the client's
            self.deadline = 0.0
            return
        self._stop_reading()
        said_nothing = self._in_head and not self._head_bytes  # connected and asked nothing
        answered = not self._in_head and self.cycle is not None and self.cycle.response_started  # before its end
        if said_nothing or answered:
            self.transport.close()
        else:
            if self._in_head:
                why = f"The request head did not arrive within {self.head_timeout:g} s."
            else:
                why = f"The request body paused for more than {self.body_timeout:g} s."
                if self.cycle is not None:  # the app, reading the body, sees the client go: logged as this
                    cast(dict[str, Any], self.cycle.scope)[TIMED_OUT] = why
            self._refuse(408, "request_timeout", why)

    def data_received(self, data: bytes) -> None:
        if self._refused or self.transport.is_closing():
            return  # refused: what still arrives is dropped unread
        if self._in_head:
            if not self._reading:  # a head starts (inline: this runs for every request)
                self.deadline, self._reading = 0.0, True
                self.reading.conns.add(self)
                self.reading.watch(self.loop)
            self._head_bytes += len(data)
        elif self._reading:  # a body arriving: the pause allowed starts again
            self.deadline = 0.0
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._stop_reading()
            if self._should_upgrade():
                self.handle_websocket_upgrade()
                # the socket is the WebSocket protocol's now; the parser, which holds this
                # protocol's bound methods (a reference cycle), is not needed again
                self.parser = None  # type: ignore[assignment]
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            cause = exc.__context__ if isinstance(exc.__context__, HeadTooLarge) else None
            if cause is not None:
                self._refuse(cause.status, "request_head_too_large", cause.message)
            else:
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
            return
        # The head is still incomplete and already too big: refuse now, not when it ends (if ever).
        if self._in_head and self._head_bytes > self.max_head:
            self._refuse(431, "request_head_too_large", f"The request head exceeds {self.max_head} bytes.")

    def on_headers_complete(self) -> None:
        # Per header nothing is checked (a callback per header line costs every request): a head
        # that arrived in reads totalling less than the limit cannot exceed it, so only a large
        # arrival is measured exactly, and the count of lines is one len().
        if len(self.url) > self.max_url:  # (a longer one than max_head was refused as it arrived)
            raise HeadTooLarge(414, f"The request target exceeds {self.max_url} bytes.")
        if len(self.headers) > self.max_headers:
            raise HeadTooLarge(431, f"The request has more than {self.max_headers} header lines.")
        if self._head_bytes > self.max_head and \
                len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers) > self.max_head:
            raise HeadTooLarge(431, f"The request head exceeds {self.max_head} bytes.")
        self._head_bytes = 0
        self._in_head = False
        self.deadline = 0.0  # the body's time starts (on_message_complete ends it, at once if none)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # what arrives next on this connection is the next request's head
        if self._reading:  # (inline: this runs for every request)
            self._reading = False
            self.reading.conns.discard(self)

    def _refuse(self, status: int, code: str, message: str) -> None:
        body = msgspec.json.encode({"error": {"message": message, "type": "invalid_request_error",
                                              "param": None, "code": code}})
        head = (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n" % (status, _REASONS[status], len(body)))
        self._refused = True
        self._stop_reading()
        self.transport.write(head + body)
        # A lingering close, as nginx does: closing with the client's bytes unread would send a
        # reset, which can destroy the answer before the client reads it. So end our side, drop
        # what still arrives, and close for good after LINGER_S.
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()


def bounded_protocol(server: Server) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for uvicorn's `http=` setting, with this server's limits."""
    return type("HttpProtocol", (BoundedHttpToolsProtocol,), {
        "max_url": server.max_url_bytes, "max_head": server.max_header_bytes, "max_headers": server.max_headers,
        "head_timeout": server.head_timeout, "body_timeout": server.body_timeout, "reading": Reading(),
    })
