"""`--metrics-port` (metrics.port): a second listener, on 127.0.0.1 only, that answers GET /metrics
and nothing else, without auth: a Prometheus on the same host (or a sidecar) scrapes it while the
main port keeps /metrics behind the master key. One request per connection; everything a client
sends is bounded (head size, time, connections at once)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from clawdbot.observability.exposition import exposition
from clawdbot.observability.metrics import Metrics

log = logging.getLogger("clawdbot.metrics")

HOST = "127.0.0.1"
MAX_HEAD = 8 * 1024  # the request line and headers
HEAD_TIMEOUT = 5.0  # seconds to send them
MAX_CONNECTIONS = 16


def _answer(status: str, content_type: str, body: bytes) -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode("latin-1") + body


def _plain(status: str, text: str) -> bytes:
    return _answer(status, "text/plain; charset=utf-8", text.encode())


def respond(head: bytes, metrics: Metrics) -> bytes:
    """The whole response to one request head (everything up to the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return _plain("400 Bad Request", "not an HTTP/1.x request\n")
    method, target, _ = parts
    if target.split("?", 1)[0] != "/metrics":
        return _plain("404 Not Found", "only /metrics is served on this port\n")
    if method not in ("GET", "HEAD"):
        return _plain("405 Method Not Allowed", "GET /metrics\n")
    accept = ""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "accept":
            accept = value.strip()
    body, content_type = exposition(metrics, accept)
    out = _answer("200 OK", content_type, body)
    return out[: out.index(b"\r\n\r\n") + 4] if method == "HEAD" else out


class MetricsListener:
    def __init__(self, port: int, metrics: Callable[[], Metrics]) -> None:
        self.port = port
        self.metrics = metrics
        self.server: asyncio.Server | None = None
        self.open = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, HOST, self.port, limit=MAX_HEAD)
        log.info("metrics on http://%s:%d/metrics (loopback only, no auth)", HOST, self.port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open >= MAX_CONNECTIONS:
            writer.close()
            return
        self.open += 1
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
            except asyncio.LimitOverrunError:
                writer.write(_plain("431 Request Header Fields Too Large", "request head too large\n"))
            except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                return
            else:
                writer.write(respond(head, self.metrics()))
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.drain(), HEAD_TIMEOUT)
        finally:
            self.open -= 1
            writer.close()
