"""The one HTTP client every HTTP provider uses: a pooled connection set per service (http_client.py),
the four timeouts (connect, first byte, idle gap between body chunks, total), the route to the
origin (direct, proxied, TLS settings: http_transport.py) and the single place where transport
exceptions become typed gateway errors.

Everything written upstream is checked for response splitting: header names are tokens, values and
the request target hold no CR, LF or NUL (a client's value that fails is a 400, a configured one
fails the config check)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

from clawdbot.config.schema import Service
from clawdbot.config.service_types import TYPES
from clawdbot.config.upstream import UnsafeHeader, check_header
from clawdbot.core import accounting
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import (
    BadRequest,
    GatewayError,
    Overloaded,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from clawdbot.core.types import Usage
from clawdbot.providers.base import Probe, RawResponse
from clawdbot.providers.http_client import (
    ConnectError,
    IncompleteResponse,
    PoolExhausted,
    RemoteProtocolError,
    Response,
    ResponseTooLarge,
)
from clawdbot.providers.http_pool import Pool, PoolStats
from clawdbot.providers.http_transport import Opener, route
from clawdbot.providers.upstream_errors import status_error

REQUEST_ID_HEADER = "X-Request-ID"
DONE_GRACE = 0.25  # seconds an upstream may take to end its response after [DONE] (drain())
# Connections beyond `limits.max_inflight`: the service's health check is not a request the limiter
# admits, and should not make requests wait (a call without a request context never waits itself).
HEALTH_CHECK_CONNECTIONS = 1
# Headers the client writes itself; a service's configured headers cannot replace them.
_OWN = frozenset({"content-length", "transfer-encoding", "connection", "content-type"})


def auth_headers(svc: Service) -> dict[str, str]:
    """The service's `auth.key` in the header its type takes (config/service_types.py: a Bearer token
    in Authorization, or Anthropic's x-api-key), unless `auth.header` names another."""
    a = svc.auth
    if a is None or a.type == "none":
        return {}
    return TYPES[svc.type].auth_headers(a.key, a.header, a.type)


def map_transport_error(exc: BaseException, service: str) -> GatewayError:
    """Translate a lower-level exception into the typed error a client sees."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, PoolExhausted):  # local overload: retryable, never the service's failure
        return Overloaded(f"service {service!r} is overloaded: {exc}", headers={"Retry-After": "1"})
    if isinstance(exc, TimeoutError):
        detail = f" ({exc})" if str(exc) else ""
        return UpstreamTimeout(f"service {service!r} timed out{detail}")
    if isinstance(exc, ConnectError):  # its message: our words and the OS's or TLS's reason
        return UpstreamUnavailable(f"service {service!r} is unreachable: {exc}")
    if isinstance(exc, ConnectionRefusedError):
        return UpstreamUnavailable(f"service {service!r} is unreachable: connection refused or failed")
    if isinstance(exc, ResponseTooLarge):
        return UpstreamError(f"service {service!r} sent a response too large to take: {exc}")
    if isinstance(exc, IncompleteResponse | ConnectionResetError):
        return UpstreamError(f"service {service!r} closed the connection before the response was complete")
    if isinstance(exc, RemoteProtocolError):
        return UpstreamError(f"service {service!r} sent a malformed HTTP response ({exc})")
    return UpstreamError(f"service {service!r} failed: {type(exc).__name__}")


class UpstreamHTTP:
    """A pooled client for one service. `open()` returns a response whose headers arrived within the
    first-byte timeout; the caller reads the body with `read_body()` or `iter_lines()` /
    `iter_chunks()`, which enforce the total deadline."""

    def __init__(self, svc: Service, base_headers: dict[str, str] | None = None,
                 opener: Opener | None = None) -> None:
        """`opener`: how connections are made (http_transport.py); None: the service's route
        (direct, or through its proxy, with its TLS settings). Tests pass scripted ones."""
        self.svc = svc
        self._opener = opener
        self._target = ""  # what goes before a path on the request line
        self._via: str | None = None  # the proxy (host:port) requests go through
        self.name = svc.name
        self.headers = dict(svc.headers)
        if base_headers:
            self.headers.update(base_headers)
        self._pool: Pool | None = None
        self.pool_stats = PoolStats()
        self._static = b""  # the encoded headers every request carries
        self._base = ""
        self.base = svc.endpoint or ""

    @property
    def base(self) -> str:
        return self._base

    @base.setter
    def base(self, url: str) -> None:
        self._base = url.rstrip("/")
        if self._pool is not None:
            self._pool.close()
        self._pool = None

    def pool(self) -> Pool:
        if self._pool is None or self._pool.closed:
            svc = self.svc
            lim = svc.limits
            ceiling = None if lim.max_inflight is None else lim.max_inflight + HEALTH_CHECK_CONNECTIONS
            opener, extra = self._opener, {}
            absolute = False
            if opener is None:
                try:
                    r = route(self._base, svc.proxy, svc.tls)
                except (ValueError, OSError) as exc:  # a proxy from the environment that cannot be used
                    raise ConnectError(f"no route to the service: {exc}") from None
                opener, absolute, self._via = r.opener, r.absolute, r.via
                if r.proxy_auth:
                    extra["Proxy-Authorization"] = r.proxy_auth
            pool = self._pool = Pool(self._base, max_idle=svc.max_pool, max_open=ceiling,
                                     connect_timeout=svc.timeouts.connect, max_queue=lim.max_queue,
                                     queue_timeout=lim.queue_timeout, stats=self.pool_stats, opener=opener,
                                     limit=svc.max_response_bytes)
            # through an HTTP proxy, the request line names the whole URL (absolute form)
            self._target = (f"http://{pool.authority}" if absolute else "") + pool.prefix
            self._static = _encode_static({**self.headers, **extra}, pool.authority)
        return self._pool

    def connections(self) -> dict[str, Any]:
        """The pool's numbers for /debug (open, idle, waiting, waits, refused, opened, limits) and
        the proxy it goes through (`via`, null: direct)."""
        return {**self.pool().snapshot(), "via": self._via}

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

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
        timeout: float | None = None,  # noqa: ASYNC109 (the first-byte timeout, not a call timeout)
    ) -> Response:
        t = self.svc.timeouts
        try:
            pool = self.pool()
            head = self._head(method, self._target + _path(path), ctx, body, headers)
            # the gateway's own calls (no request context: health checks) never wait for a connection
            resp = await pool.request(head, body, t.first_byte if timeout is None else timeout, t.idle,
                                      wait=ctx is not None, replayable=method in _REPLAYABLE)
        except UnsafeHeader as exc:
            raise BadRequest(f"cannot send this request to service {self.name!r}: {exc}") from None
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            if isinstance(exc, PoolExhausted) and ctx is not None:
                ctx.pool_wait_ms += exc.waited * 1000.0
            raise map_transport_error(exc, self.name) from exc
        if ctx is not None:
            ctx.upstream_status = resp.status
            if resp.pool_wait:
                ctx.pool_wait_ms += resp.pool_wait * 1000.0
        return resp

    def _head(self, method: str, target: str, ctx: RequestContext | None, body: bytes | None,
              headers: dict[str, str] | None) -> bytes:
        ctype = "application/json"
        if headers:
            merged = {k.lower(): (k, v) for k, v in self.headers.items()}
            merged.update((k.lower(), (k, v)) for k, v in headers.items())
            static = _encode_static(dict(merged.values()), self.pool().authority)
            ctype = merged.get("content-type", ("", ctype))[1]
            check_header("Content-Type", ctype)
        else:
            static = self._static
        parts = [f"{method} {target} HTTP/1.1\r\n".encode(), static]
        if ctx is not None:
            rid = ctx.upstream_id()  # always a UUID: no line break to check for
            parts.append(f"{REQUEST_ID_HEADER}: {rid}\r\n".encode("latin-1"))
            if ctx.trace_headers is not None:  # traceparent (observability/tracing.py), checked lines
                parts.append(ctx.trace_headers)
        if body is not None:
            parts.append(f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n".encode("latin-1"))
        else:
            parts.append(b"\r\n")
        return b"".join(parts)

    async def forward(self, path: str, body: bytes, stream: bool, ctx: RequestContext,
                      read_answer: Callable[[bytes, str], tuple[Usage | None, str | None]],
                      headers: dict[str, str] | None = None) -> RawResponse:
        """The fast path's call: the client's bytes up, the upstream's bytes back. A whole body is
        read, its usage counted and its model noted (`read_answer`, the dialect's: raises
        UpstreamError for a body that is not an answer); a stream is returned as its chunks, read by
        the caller."""
        deadline = self.deadline()
        resp = await self.open("POST", path, ctx, body=body, headers=headers)
        await self.raise_for_status(resp, deadline)
        ctype = resp.headers.get("Content-Type", "application/json")
        if not stream:
            data = await self.read_body(resp, deadline)
            usage, model = read_answer(data, self.name)
            if usage is not None:
                accounting.usage(ctx, usage.prompt_tokens, usage.completion_tokens)
            accounting.answered_by(ctx, model)
            return RawResponse(resp.status, ctype, body=data)
        return RawResponse(resp.status, ctype, chunks=self.iter_chunks(resp, deadline),
                           complete=lambda: resp.complete)

    async def read_body(self, resp: Response, deadline: float) -> bytes:
        try:
            return await resp.read(0.0 if resp.complete else _loop_deadline(deadline))
        except BaseException as exc:
            resp.close()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise map_transport_error(exc, self.name) from exc
        finally:
            resp.release()

    async def raise_for_status(self, resp: Response, deadline: float) -> None:
        if resp.status < 400:
            return
        body = await self.read_body(resp, deadline)
        headers: dict[str, str] = {}
        if resp.status == 429 and "Retry-After" in resp.headers:
            headers["Retry-After"] = resp.headers["Retry-After"]
        raise status_error(self.name, resp.status, body, headers)

    async def iter_chunks(self, resp: Response, deadline: float) -> AsyncGenerator[bytes, None]:
        """Raw body chunks as they arrive. Stopping early closes the connection, unless the response
        had already ended (a caller that stops at an SSE stream's [DONE] usually finds it has).
        An SSE event (or, other types, a line) longer than max_response_bytes is a 502: its reader
        would have to hold all of it."""
        loop_deadline = _loop_deadline(deadline)
        limit = self.svc.max_response_bytes
        # what a reader must hold before it can act: an SSE event, else a line (NDJSON)
        sse = "event-stream" in resp.headers.get("content-type", "")
        sep = b"\n\n" if sse else b"\n"
        pending = 0  # bytes since a chunk with a separator (counted whole: within a chunk of the limit)
        tail = b""  # the last two bytes of the chunk before: a separator may straddle two chunks
        try:
            while True:
                chunk = await resp.read_chunk(loop_deadline)
                if not chunk:
                    break
                # (find, not `in`: `bytes in bytes` first tries the operand as an int and raises
                # and clears a TypeError, ~4x the cost; this runs for every chunk)
                if chunk.find(sep) >= 0 or (sse and chunk.find(b"\n\r\n") >= 0):
                    pending = 0
                else:
                    joint = tail + chunk[:2]
                    if joint.find(sep) >= 0 or (sse and joint.find(b"\n\r\n") >= 0):
                        pending = len(chunk)
                    else:
                        pending += len(chunk)
                        if pending > limit:
                            raise ResponseTooLarge(limit)
                tail = chunk[-2:]
                yield chunk
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError | GeneratorExit):
                raise
            raise map_transport_error(exc, self.name) from exc
        finally:
            resp.release()  # to the pool only if the response is complete and error-free; else closed

    async def iter_lines(self, resp: Response, deadline: float) -> AsyncGenerator[bytes, None]:
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

    async def probe_models(self, path: str, decode: Callable[[bytes], list[str]]) -> Probe:
        """GET `path` (a model list) within the connect timeout: reachability, latency and the
        models it names. A probe reports, it never raises."""
        start = time.perf_counter()
        limit = self.svc.timeouts.connect
        try:
            resp = await self.open("GET", path, None, timeout=limit)
            deadline = time.monotonic() + limit
            await self.raise_for_status(resp, deadline)
            models = decode(await self.read_body(resp, deadline))
        except Exception as exc:
            return Probe(False, detail=str(exc)[:200], status=getattr(exc, "upstream_status", None))
        return Probe(True, (time.perf_counter() - start) * 1000.0, models=models)

    async def get_json(self, path: str, timeout: float) -> Any:  # noqa: ASYNC109
        import msgspec

        resp = await self.open("GET", path, None, timeout=timeout)
        deadline = time.monotonic() + timeout
        await self.raise_for_status(resp, deadline)
        return msgspec.json.decode(await self.read_body(resp, deadline))


async def drain(chunks: AsyncGenerator[bytes, None], complete: Callable[[], bool] | None = None,
                grace: float = DONE_GRACE) -> None:
    """After an SSE stream's [DONE] (the answer is complete): read what is left of the response for
    at most `grace` seconds, so the connection can be reused, then close it. The end of the
    response usually arrives with [DONE] (`complete()`: read it out, no timer); an upstream that
    keeps it open loses the connection."""
    try:
        if complete is not None and complete():
            async for _ in chunks:
                pass  # bytes after [DONE] are no part of the answer
            return
        async with asyncio.timeout(grace):
            async for _ in chunks:
                pass
    except (TimeoutError, GatewayError):
        pass
    finally:
        await chunks.aclose()


def _loop_deadline(monotonic_deadline: float) -> float:
    # asyncio's clock is time.monotonic() for the default and uvloop loops; convert defensively.
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())


_REPLAYABLE = frozenset({"GET", "HEAD"})
def _path(path: str) -> str:
    """A request target: no whitespace, control characters or non-ASCII (those go percent-encoded)."""
    if not path.isascii() or not path.isprintable() or " " in path:
        raise UnsafeHeader(f"request path {path[:60]!r} contains a space, control or non-ASCII character")
    return path


def _encode_static(headers: dict[str, str], authority: str) -> bytes:
    lines = []
    names = {k.lower() for k in headers}
    if "host" not in names:
        lines.append(f"Host: {authority}\r\n")
    if "accept-encoding" not in names:  # the body is passed through as is: ask for it uncompressed
        lines.append("Accept-Encoding: identity\r\n")
    for k, v in headers.items():
        if k.lower() in _OWN:
            continue
        check_header(k, v)
        lines.append(f"{k}: {v}\r\n")
    return "".join(lines).encode("latin-1")
