"""The ASGI application: the Host check, routing, request ids, auth (with a throttle on failed keys),
body and JSON-shape limits, error translation and the access log. Pure ASGI, no framework: this is
the hot path."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from typing import Protocol

from clawdbot.api import routes
from clawdbot.api.admin_api import PREFIX as ADMIN_API
from clawdbot.api.admin_api import ROUTES as ADMIN_ROUTES
from clawdbot.api.admin_api import AdminApi
from clawdbot.api.errors import error_body_for, error_status, internal_error, method_not_allowed
from clawdbot.api.exchange import Exchange
from clawdbot.api.heap import HeapPolicy
from clawdbot.api.hosts import AllowedHosts
from clawdbot.api.http import ClientGone, Receive, Scope, Send, deny, header
from clawdbot.api.metered import METERED, read_head
from clawdbot.api.metrics_listener import MetricsListener
from clawdbot.api.origins import AllowedOrigins, preflight
from clawdbot.api.protocol import TIMED_OUT
from clawdbot.api.routes import Route
from clawdbot.codecs.bounds import check_json_shape
from clawdbot.config.schema import Server
from clawdbot.core.context import RequestContext, new_request_id
from clawdbot.core.errors import (
    BadRequest,
    GatewayError,
    NotFound,
    Unauthorized,
)
from clawdbot.core.networks import networks
from clawdbot.observability.logging import request_id_var
from clawdbot.observability.tracing import passthrough
from clawdbot.pipeline.policy import Pipeline
from clawdbot.tenancy.errors import AdminRequired, TooManyFailedAttempts
from clawdbot.tenancy.principal import ANONYMOUS, Principal
from clawdbot.tenancy.service import Tenancy
from clawdbot.tenancy.throttle import AuthThrottle

log = logging.getLogger("clawdbot.api")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
ADMIN_BODY_BYTES = 64 * 1024  # admin API bodies: a key's or a team's fields, never a prompt
ADMIN_METHODS = " ".join(sorted({m for ms in ADMIN_ROUTES.values() for m in ms}))  # a preflight's answer

_SANE_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")


def request_id(given: bytes | None) -> str:
    if given is not None and _SANE_ID.fullmatch(given):
        return given.decode()
    return new_request_id()  # a UUID: what goes upstream must be one (RequestContext.upstream_id)


def new_context(given: bytes | None) -> RequestContext:
    """The request's context, its id the client's (if sane) or a new UUID, which then also goes
    upstream as it is (no check of its shape per request)."""
    if given is not None and _SANE_ID.fullmatch(given):
        return RequestContext(given.decode())  # upstream_id() sees whether it is a UUID
    rid = new_request_id()
    return RequestContext(rid, upstream_request_id=rid)


class Extension(Protocol):
    """More routes and the WebSocket endpoint (the web gateway layer, web/layer.py), started after
    the gateway and closed before it."""

    def route(self, path: str) -> Route | None: ...

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class NoExtension:
    def route(self, path: str) -> Route | None:
        return None

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1008})  # refused before the upgrade: 403

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class Mcp(Protocol):
    """The MCP gateway's endpoint (mcp/endpoint.py), built only when `mcp:` lists servers."""

    def route(self, path: str) -> Route | None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class NoMcp:
    def route(self, path: str) -> Route | None:
        return None

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class App:
    def __init__(self, pipeline: Pipeline, server: Server, tenancy: Tenancy, ext: Extension | None = None,
                 throttle: AuthThrottle | None = None, metrics_port: int | None = None,
                 mcp: Mcp | None = None) -> None:
        self.pipeline = pipeline
        self.gateway = pipeline.gateway
        # Master key and virtual keys (tenancy/); without a master key auth stays off.
        self.tenancy = tenancy
        self.admin_api = AdminApi(self.tenancy, pipeline.check_key_metadata, pipeline.request_log)
        self.server = server
        self.ext: Extension = ext if ext is not None else NoExtension()
        self.mcp: Mcp = mcp if mcp is not None else NoMcp()
        self.limit = server.max_body_bytes
        self.hosts = AllowedHosts(server.allowed_hosts, bool(server.master_key))
        self.origins = AllowedOrigins(server.cors_origins, pipeline.gateway.config.web.allowed_origins)
        # failed keys per client address: shared with the chat page's login (web/layer.py)
        self.throttle = throttle if throttle is not None else AuthThrottle(
            server.auth_failures_burst, server.auth_failures_per_minute, trusted=networks(server.trusted_proxies))
        # --metrics-port: /metrics alone, on loopback, without auth (api/metrics_listener.py)
        self.metrics_listener = (MetricsListener(metrics_port, lambda: self.gateway.metrics)
                                 if metrics_port is not None else None)
        self.heap = HeapPolicy(server.gc_freeze, server.gc_thaw_interval, young_every=server.gc_young_every)
        self.gateway.metrics.heap = self.heap.counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "websocket":
            if not self.hosts.allowed(header(scope, b"host")):
                await receive()
                await deny(scope, send, 400, "invalid_host", "This gateway does not answer to that Host name.")
                return
            await self.ext.websocket(scope, receive, send)

    def stopping(self) -> None:
        """The server stops accepting and waits for open connections before the lifespan's
        shutdown: end what would otherwise keep it waiting (the live request streams) now."""
        self.pipeline.request_log.hub.close()

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.tenancy.start()
                    await self.pipeline.start()
                    await self.ext.start()
                    await self.mcp.start()
                    if self.metrics_listener is not None:
                        await self.metrics_listener.start()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                # Everything built at start lives as long as the process: keep it out of the
                # collector's way so a full collection under load does not stall a request.
                gc.collect()
                gc.freeze()
                # and, by server.gc_freeze, what survives collections from now on (api/heap.py)
                self.heap.install(asyncio.get_running_loop())
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                self.heap.remove()
                try:
                    await self.mcp.close()  # stdio servers stopped
                except Exception:
                    log.exception("mcp gateway shutdown failed")
                try:
                    await self.ext.close()  # chat runs end (and are stored) while providers still work
                except Exception:
                    log.exception("web layer shutdown failed")
                if self.metrics_listener is not None:
                    await self.metrics_listener.close()
                await self.pipeline.close()
                await self.tenancy.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        # One pass over the headers instead of one per lookup; the first of a repeated name wins,
        # as in header().
        hdrs: dict[bytes, bytes] = dict(reversed(scope["headers"]))
        ctx = new_context(hdrs.get(b"x-request-id"))
        hint = hdrs.get(b"x-clawdbot-priority")  # routing inputs (routing/router.py)
        if hint is not None:
            ctx.priority = hint.decode("latin-1")[:64]
        hint = hdrs.get(b"x-clawdbot-tag")
        if hint is not None:
            ctx.tag = hint.decode("latin-1")[:64]
        ctx.headers = hdrs
        token = request_id_var.set(ctx.request_id)
        ex = Exchange(scope, receive, send, ctx)
        path = scope["path"]
        tracer = self.pipeline.tracer
        if tracer is not None:  # the request's spans, parented to the client's traceparent
            ctx.trace = tracer.start(ctx, path, hdrs)
        elif b"traceparent" in hdrs:  # tracing off: the client's trace context goes upstream as it is
            ctx.trace_headers = passthrough(hdrs)
        metrics = self.gateway.metrics
        metrics.http_in_flight += 1
        try:
            await self.dispatch(ex, path, hdrs)
        except asyncio.CancelledError:
            if not ex.disconnected:
                raise
            ctx.error, ctx.cancelled = "client disconnected", True
            ex.status = 499  # nginx's convention for "client closed request", in the log only
        except ClientGone:
            ctx.error, ctx.cancelled, ex.status = "client disconnected", True, 499
            if TIMED_OUT in scope:  # the protocol gave up on the body (api/protocol.py) and answered 408
                ctx.error, ex.status = scope[TIMED_OUT], 408
        except GatewayError as exc:
            await self.fail(ex, exc)
        except Exception:
            log.exception("unhandled error on %s", path)
            await self.fail(ex, internal_error(ctx.request_id))
        finally:
            metrics.http_in_flight -= 1
            ex.stop_watching()
            await self.pipeline.end(ctx, scope["method"], path, ex.status)
            request_id_var.reset(token)

    async def authenticate(self, ex: Exchange, hdrs: dict[bytes, bytes], admin: bool) -> Principal:
        given = bytes(hdrs.get(b"authorization", b""))
        if not given and b"x-api-key" in hdrs:  # Anthropic's clients send the key so
            given = b"Bearer " + bytes(hdrs[b"x-api-key"])
        throttle = self.throttle
        if throttle.buckets:  # some address failed lately: is it this one?
            wait = throttle.wait(throttle.address(ex.scope))
            if wait:
                raise TooManyFailedAttempts(f"Too many invalid API keys from this address; try again in {wait} s.",
                                            headers={"Retry-After": str(wait)})
        try:
            p = await self.tenancy.authn.resolve(given)
        except Unauthorized as exc:
            if given and exc.code == "invalid_api_key":  # a guess, not a missing, revoked or expired key
                throttle.failed(throttle.address(ex.scope))
            raise
        if p is ANONYMOUS:  # auth is off (no master key): each admin endpoint refuses on its own
            return p
        if admin and not p.is_admin:
            raise AdminRequired("This key may not use admin endpoints (they need the master key or an admin key).")
        ctx = ex.ctx
        ctx.principal, ctx.identity = p.name, p
        if ctx.tag is None and p.tags:  # the request's own tag wins
            ctx.tag = p.tags[0]
        prio = p.metadata.get("priority")
        if prio is not None:  # the key's priority wins: a caller may not promote itself
            ctx.priority = str(prio)[:64]
        return p

    async def admin_call(self, ex: Exchange, hdrs: dict[bytes, bytes]) -> None:
        if await self.authenticate(ex, hdrs, admin=True) is ANONYMOUS:
            raise AdminRequired("The admin API needs a master key: set server.master_key or CLAWDBOT_MASTER_KEY.",
                                code="master_key_required")
        body = b""
        if ex.scope["method"] in ("POST", "PATCH"):
            body = await self.json_body(ex, min(self.limit, ADMIN_BODY_BYTES))
            if body and not hdrs.get(b"content-type", b"").startswith(b"application/json"):
                raise BadRequest("Send the body as JSON with 'Content-Type: application/json'.",
                                 param="Content-Type", code="invalid_content_type")
        await self.admin_api.handle(ex, body)

    async def json_body(self, ex: Exchange, limit: int) -> bytes:
        """The body, bounded in bytes, in nesting and in values before anything decodes it."""
        body = await ex.body(limit)
        s = self.server
        check_json_shape(body, s.max_json_depth, s.max_json_items)
        return body

    async def dispatch(self, ex: Exchange, path: str, hdrs: dict[bytes, bytes]) -> None:
        hosts = self.hosts
        if not hosts.any and not hosts.allowed(hdrs.get(b"host")):
            raise BadRequest("This gateway does not answer to that Host name (server.allowed_hosts).",
                             param="Host", code="invalid_host")
        origin = hdrs.get(b"origin")  # a browser's request (api/origins.py): allowed, with CORS headers, or a 403
        cors = self.origins.headers(origin, hdrs.get(b"host")) if origin is not None else None
        if cors is not None:
            ex.resp_headers += cors
        admin = path.startswith(ADMIN_API)
        route = None if admin else (routes.ROUTES.get(path) or routes.find(path) or self.ext.route(path)
                                    or self.mcp.route(path))
        method = ex.scope["method"]
        if method == "OPTIONS" and cors is not None and b"access-control-request-method" in hdrs:
            return await self.preflight(ex, path, ADMIN_METHODS if admin else route and route.method, hdrs)
        if admin:
            return await self.admin_call(ex, hdrs)
        if route is None:
            raise NotFound(f"Unknown path: {path}", code="unknown_url")
        if method != route.method and method not in route.method.split(" "):
            raise method_not_allowed(route.method.split(" "), path)
        principal = ANONYMOUS
        if route.is_api:
            principal = await self.authenticate(ex, hdrs, route.admin or path.startswith("/admin/"))
        elif route.key_optional and b"authorization" in hdrs:
            principal = await self.authenticate(ex, hdrs, False)  # more detail for a caller with a key
        body = b""
        if route.needs_body and method in BODY_METHODS:  # a route that also answers GET reads no body then
            ctype = hdrs.get(b"content-type", b"")
            if not ctype.startswith(b"application/json") and not route.any_content_type:
                raise BadRequest("Send the body as JSON with 'Content-Type: application/json'.",
                                 param="Content-Type", code="invalid_content_type")
            body = await ex.body(route.max_body or self.limit)
            check_json_shape(body, self.server.max_json_depth, self.server.max_json_items)
            if path in METERED and self.pipeline.meters(principal):
                # A body that cannot be read for the limits is refused here (read_head): a request
                # that cannot be metered is never served.
                head = read_head(body, path)
                ex.resp_headers += await self.pipeline.admit(ex.ctx, principal, head.model, head.prompt_estimate,
                                                             head.completion_cap())
            ex.watch_disconnect()
        await route.handler(ex, self.pipeline, body)

    async def preflight(self, ex: Exchange, path: str, methods: str | None, hdrs: dict[bytes, bytes]) -> None:
        """A CORS preflight from an allowed origin (its headers are in ex.resp_headers already):
        204 with the methods the path takes (None: no such path, 404)."""
        if methods is None:
            raise NotFound(f"Unknown path: {path}", code="unknown_url")
        ex.status, ex.started = 204, True
        await ex.send({"type": "http.response.start", "status": 204,
                       "headers": ex.resp_headers + preflight(methods, hdrs)})
        await ex.end()

    async def fail(self, ex: Exchange, exc: GatewayError) -> None:
        ex.ctx.error = exc.message
        ex.ctx.error_code = exc.code
        if ex.started:  # headers already sent: nothing more can be said over HTTP
            ex.status = exc.status
            return
        extra = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
        status = error_status(exc)
        await ex.json(status, error_body_for(ex.scope["path"], exc, status), extra)
