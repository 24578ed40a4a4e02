"""The one HTTP client every HTTP provider uses: a pooled aiohttp session per service, the three
timeouts (connect, first byte, total) and the single place where transport exceptions become typed
gateway errors."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from clawdbot.config.schema import Service
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import GatewayError, UpstreamError, UpstreamTimeout, UpstreamUnavailable

REQUEST_ID_HEADER = "X-Request-ID"


def map_transport_error(exc: BaseException, service: str) -> GatewayError:
    """Translate a lower-level exception into the typed error a client sees."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"service {service!r} timed out")
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionRefusedError):
        return UpstreamUnavailable(f"service {service!r} is unreachable: connection refused or failed")
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return UpstreamError(f"service {service!r} closed the connection before the response was complete")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return UpstreamError(f"service {service!r} failed: {type(exc).__name__}")
    return UpstreamError(f"service {service!r} failed: {type(exc).__name__}")


def short_reason(body: bytes, limit: int = 200) -> str:
    """A short, log-safe reason from an upstream error body (its error.message when it has one)."""
    import msgspec

    with contextlib.suppress(Exception):
        data = msgspec.json.decode(body)
        if isinstance(data, dict):
            err = data.get("error", data.get("message"))
            if isinstance(err, dict):
                err = err.get("message")
            if isinstance(err, str):
                return err[:limit]
    return body[:limit].decode("utf-8", "replace").strip()


class UpstreamHTTP:
    """A pooled client for one service. `open()` returns a response whose headers arrived within the
    first-byte timeout; the caller reads the body with `read_body()` or `iter_lines()` /
    `iter_chunks()`, which enforce the total deadline."""

    def __init__(self, svc: Service, base_headers: dict[str, str] | None = None) -> None:
        self.svc = svc
        self.name = svc.name
        self.base = (svc.endpoint or "").rstrip("/")
        self.headers = dict(svc.headers)
        if base_headers:
            self.headers.update(base_headers)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.svc.max_pool, limit_per_host=self.svc.max_pool, ttl_dns_cache=300,
                enable_cleanup_closed=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.svc.timeouts.connect),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def deadline(self) -> float:
        return time.monotonic() + self.svc.timeouts.total

    async def open(
        self,
        method: str,
        path: str,
        ctx: RequestContext | None,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> aiohttp.ClientResponse:
        hdrs = dict(self.headers)
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        if ctx is not None:
            hdrs[REQUEST_ID_HEADER] = ctx.request_id
        if headers:
            hdrs.update(headers)
        first_byte = self.svc.timeouts.first_byte if timeout is None else timeout
        try:
            async with asyncio.timeout(first_byte):
                resp = await self.session().request(method, self.base + path, data=body, headers=hdrs)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise map_transport_error(exc, self.name) from exc
        if ctx is not None:
            ctx.upstream_status = resp.status
        return resp

    async def read_body(self, resp: aiohttp.ClientResponse, deadline: float) -> bytes:
        try:
            async with asyncio.timeout_at(_loop_deadline(deadline)):
                return await resp.read()
        except BaseException as exc:
            resp.close()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise map_transport_error(exc, self.name) from exc
        finally:
            resp.release()

    async def raise_for_status(self, resp: aiohttp.ClientResponse, deadline: float) -> None:
        if resp.status < 400:
            return
        body = await self.read_body(resp, deadline)
        headers: dict[str, str] = {}
        if resp.status == 429 and "Retry-After" in resp.headers:
            headers["Retry-After"] = resp.headers["Retry-After"]
        raise UpstreamError(
            f"service {self.name!r} answered {resp.status}: {short_reason(body)}",
            upstream_status=resp.status,
            headers=headers,
        )

    async def iter_chunks(self, resp: aiohttp.ClientResponse, deadline: float) -> AsyncIterator[bytes]:
        """Raw body chunks as they arrive. Stopping early closes the connection (not reusable)."""
        done = False
        try:
            async with asyncio.timeout_at(_loop_deadline(deadline)):
                async for chunk in resp.content.iter_any():
                    yield chunk
            done = True
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError | GeneratorExit):
                raise
            raise map_transport_error(exc, self.name) from exc
        finally:
            if done:
                resp.release()
            else:
                resp.close()

    async def iter_lines(self, resp: aiohttp.ClientResponse, deadline: float) -> AsyncIterator[bytes]:
        """Complete lines (without the newline) as they arrive; a final unterminated line too."""
        buf = b""
        async for chunk in self.iter_chunks(resp, deadline):
            buf += chunk
            while True:
                nl = buf.find(b"\n")
                if nl < 0:
                    break
                line, buf = buf[:nl], buf[nl + 1 :]
                yield line.rstrip(b"\r")
        if buf.strip():
            yield buf

    async def get_json(self, path: str, timeout: float) -> Any:
        import msgspec

        resp = await self.open("GET", path, None, timeout=timeout)
        deadline = time.monotonic() + timeout
        await self.raise_for_status(resp, deadline)
        return msgspec.json.decode(await self.read_body(resp, deadline))


def _loop_deadline(monotonic_deadline: float) -> float:
    # asyncio's clock is time.monotonic() for the default and uvloop loops; convert defensively.
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())
