"""uvicorn's httptools protocol with limits on the request head.

httptools collects a header value (and uvicorn the URL) by appending every fragment that arrives,
with no limit of its own: a 160 MiB header from an unauthenticated client held the event loop for
seconds. This subclass counts the head's bytes as they arrive and refuses, before the app runs:
414 for a request target over `max_url_bytes`, 431 for a head over `max_header_bytes` or with more
than `max_headers` lines (a single header is bounded by the head's limit). The WebSocket upgrade
request goes through here too."""

from __future__ import annotations

from typing import Any

import httptools
import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from clawdbot.config.schema import Server

_REASONS = {414: b"URI Too Long", 431: b"Request Header Fields Too Large"}
LINGER_S = 2.0  # seconds a refused connection drops what still arrives before it closes


class HeadTooLarge(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_url = 8 * 1024
    max_head = 64 * 1024
    max_headers = 100

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # between a request's end (or the connection's start) and its next head's end
        self._head_bytes = 0  # bytes received meanwhile
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused or self.transport.is_closing():
            return  # refused: what still arrives is dropped unread
        if self._in_head:
            self._head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
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
                self._refuse(cause)
            else:
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
            return
        # The head is still incomplete and already too big: refuse now, not when it ends (if ever).
        if self._in_head and self._head_bytes > self.max_head:
            self._refuse(HeadTooLarge(431, f"The request head exceeds {self.max_head} bytes."))

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
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # what arrives next on this connection is the next request's head

    def _refuse(self, exc: HeadTooLarge) -> None:
        body = msgspec.json.encode({"error": {"message": exc.message, "type": "invalid_request_error",
                                              "param": None, "code": "request_head_too_large"}})
        head = (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n" % (exc.status, _REASONS[exc.status], len(body)))
        self._refused = True
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
    })
