"""How the upstream client reaches an origin: the one seam between the HTTP client and the network.

An `Opener` has one method, `open(factory)`, that returns a connected `Connection` (the asyncio
Protocol the factory makes) and raises OSError (TLS failures included) when it cannot. The pool
(http_pool.py) calls it for every new connection. Three exist: `Direct` (TCP, or TLS with the
service's CA bundle and client certificate), `Tunnel` (an HTTP proxy's CONNECT, then TLS inside
it) and, in the tests, scripted servers that need no socket. A plain-http service behind a proxy
needs no opener of its own: it is `Direct` to the proxy, and the request carries the absolute URL
(`Route.absolute`)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from clawdbot.config.proxy import ProxyURL, proxy_for
from clawdbot.config.schema import UpstreamTLS
from clawdbot.config.upstream import tls_context
from clawdbot.providers.http_client import Connection

MAX_TUNNEL_HEAD = 16 * 1024  # bytes of a proxy's answer to CONNECT


class Opener(Protocol):
    async def open(self, factory: Callable[[], Connection]) -> Connection: ...


class ProxyRefused(OSError):
    """The proxy answered CONNECT with anything but 2xx (407: it wants credentials)."""


@dataclass(frozen=True)
class Route:
    """Where a service's requests go: the opener, and whether the request line carries the whole
    URL (plain http through a proxy) with the proxy's credentials beside it."""

    opener: Opener
    absolute: bool = False
    proxy_auth: str | None = None
    via: str | None = None  # the proxy, for /debug and errors (no credentials)


def route(url: str, proxy: str | None, tls: UpstreamTLS | None) -> Route:
    """The route to `url` for a service with these `proxy` and `tls` settings (config/schema.py)."""
    u = urlsplit(url)
    secure = u.scheme == "https"
    host = u.hostname or ""
    port = u.port or (443 if secure else 80)
    ctx = tls_context(tls) if secure else None
    via = proxy_for(url, proxy)
    if via is None:
        return Route(Direct(host, port, ctx))
    if secure:
        assert ctx is not None
        return Route(Tunnel(via, host, port, ctx), via=via.display)
    return Route(Direct(via.host, via.port, None), absolute=True, proxy_auth=via.auth, via=via.display)


class Direct:
    """A TCP connection to host:port, TLS on it when `ssl` is given (the server's name checked)."""

    def __init__(self, host: str, port: int, ssl_ctx: ssl.SSLContext | None) -> None:
        self.host, self.port, self.ssl = host, port, ssl_ctx

    async def open(self, factory: Callable[[], Connection]) -> Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(factory, self.host, self.port, ssl=self.ssl,
                                               server_hostname=self.host if self.ssl else None)
        return conn


class _Answer(asyncio.Protocol):
    """Reads a proxy's answer to CONNECT up to the end of its headers (`buf` holds anything after)."""

    def __init__(self) -> None:
        self.buf = b""
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end >= 0:
            self.done.set_result(self.buf[: end + 4])
        elif len(self.buf) > MAX_TUNNEL_HEAD:
            self.done.set_exception(ProxyRefused(f"the proxy's CONNECT answer exceeds {MAX_TUNNEL_HEAD} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ProxyRefused(f"the proxy closed the connection during CONNECT ({exc})"))


class Tunnel:
    """An HTTP proxy's CONNECT tunnel to host:port, then TLS to the origin inside it."""

    def __init__(self, proxy: ProxyURL, host: str, port: int, ssl_ctx: ssl.SSLContext) -> None:
        self.proxy, self.host, self.port, self.ssl = proxy, host, port, ssl_ctx

    async def open(self, factory: Callable[[], Connection]) -> Connection:
        loop = asyncio.get_running_loop()
        transport, answer = await loop.create_connection(_Answer, self.proxy.host, self.proxy.port)
        try:
            target = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
            ask = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
            if self.proxy.auth:
                ask += f"Proxy-Authorization: {self.proxy.auth}\r\n"
            transport.write((ask + "\r\n").encode("latin-1"))
            head = await answer.done
            status = _status(head)
            if not 200 <= status[0] < 300:
                raise ProxyRefused(f"the proxy {self.proxy.display} refused the tunnel to {target}: {status[1]}")
            if len(answer.buf) > len(head):  # the origin cannot speak before the client: out of sync
                raise ProxyRefused("the proxy sent bytes after its CONNECT answer")
            conn = factory()
            tls = await loop.start_tls(transport, conn, self.ssl, server_hostname=self.host)
            if tls is None:  # the loop closed the transport during the handshake
                raise ProxyRefused("the tunnel closed during the TLS handshake")
        except BaseException:
            transport.close()
            raise
        conn.connection_made(tls)
        return conn


def _status(head: bytes) -> tuple[int, str]:
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProxyRefused(f"the proxy's answer to CONNECT is not HTTP: {line[:80]!r}")
    return int(parts[1]), line[:200]
