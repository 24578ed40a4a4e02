"""The ASGI application: routing, request ids, auth, the body limit, error translation and the
access log. Pure ASGI, no framework: this is the hot path."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
from collections.abc import Awaitable, Callable
from typing import Protocol

from clawdbot.api import admin, chat, endpoints, openapi
from clawdbot.api.admin_api import PREFIX as ADMIN_API
from clawdbot.api.admin_api import AdminApi
from clawdbot.api.errors import error_body, error_status, internal_error
from clawdbot.api.exchange import Exchange
from clawdbot.api.http import ClientGone, Receive, Scope, Send
from clawdbot.api.metered import METERED, read_head
from clawdbot.config.schema import Server
from clawdbot.core.context import RequestContext, new_request_id
from clawdbot.core.errors import (
    BadRequest,
    GatewayError,
    MethodNotAllowed,
    NotFound,
)
from clawdbot.core.gateway import Gateway
from clawdbot.observability.access import AccessLog
from clawdbot.observability.logging import request_id_var
from clawdbot.tenancy.errors import AdminRequired, ModelNotAllowed
from clawdbot.tenancy.metering import Metering
from clawdbot.tenancy.metering_build import build_metering
from clawdbot.tenancy.principal import ANONYMOUS, Principal
from clawdbot.tenancy.service import Tenancy, build_tenancy

log = logging.getLogger("clawdbot.api")
Handler = Callable[[Exchange, Gateway, bytes], Awaitable[None]]
Route = tuple[str, Handler, bool, bool]  # (method, handler, needs_json_body, is_api)

# path -> (method, handler, needs_json_body, is_api)
ROUTES: dict[str, tuple[str, Handler, bool, bool]] = {
    "/v1/chat/completions": ("POST", chat.chat_completions, True, True),
    "/v1/embeddings": ("POST", endpoints.embeddings, True, True),
    "/v1/models": ("GET", endpoints.list_models, False, True),
    "/healthz": ("GET", endpoints.healthz, False, False),
    "/readyz": ("GET", endpoints.readyz, False, False),
    "/admin/reload": ("POST", admin.reload, False, True),
    "/openapi.json": ("GET", openapi.OpenApi(), False, False),
}
for _p in ("/chat/completions", "/embeddings", "/models"):
    ROUTES[_p] = ROUTES["/v1" + _p]

_SANE_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")


def request_id(given: bytes | None) -> str:
    if given is not None and _SANE_ID.fullmatch(given):
        return given.decode()
    return new_request_id()  # a UUID: what goes upstream must be one (RequestContext.upstream_id)


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


class App:
    def __init__(self, gateway: Gateway, server: Server, access: AccessLog, ext: Extension | None = None,
                 tenancy: Tenancy | None = None, metering: Metering | None = None) -> None:
        self.gateway = gateway
        # Master key and virtual keys (tenancy/); without a master key auth stays off.
        self.tenancy = tenancy if tenancy is not None else build_tenancy(server, gateway.config, os.environ)
        self.admin_api = AdminApi(self.tenancy)
        # Rate limits, parallel limits, budgets and spend of virtual keys and models (tenancy/)
        self.metering = metering if metering is not None else build_metering(gateway.config, os.environ, self.tenancy)
        self.server = server
        self.access = access
        self.ext: Extension = ext if ext is not None else NoExtension()
        self.limit = server.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "websocket":
            await self.ext.websocket(scope, receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.gateway.start()
                    await self.tenancy.start()
                    await self.metering.start()
                    await self.ext.start()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                # Everything built at start lives as long as the process: keep it out of the
                # collector's way so a full collection under load does not stall a request.
                gc.collect()
                gc.freeze()
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                try:
                    await self.ext.close()  # chat runs end (and are stored) while providers still work
                except Exception:
                    log.exception("web layer shutdown failed")
                await self.metering.close()  # spend still queued reaches the database (or the journal)
                await self.tenancy.close()
                await self.gateway.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        # One pass over the headers instead of one per lookup; the first of a repeated name wins,
        # as in header().
        hdrs: dict[bytes, bytes] = dict(reversed(scope["headers"]))
        ctx = RequestContext(request_id(hdrs.get(b"x-request-id")))
        hint = hdrs.get(b"x-clawdbot-priority")  # routing inputs (routing/router.py)
        if hint is not None:
            ctx.priority = hint.decode("latin-1")[:64]
        hint = hdrs.get(b"x-clawdbot-tag")
        if hint is not None:
            ctx.tag = hint.decode("latin-1")[:64]
        token = request_id_var.set(ctx.request_id)
        ex = Exchange(scope, receive, send, ctx)
        path = scope["path"]
        try:
            await self.dispatch(ex, path, hdrs)
        except asyncio.CancelledError:
            if not ex.disconnected:
                raise
            ctx.error, ctx.cancelled = "client disconnected", True
            ex.status = 499  # nginx's convention for "client closed request", in the log only
        except ClientGone:
            ctx.error, ctx.cancelled, ex.status = "client disconnected", True, 499
        except GatewayError as exc:
            await self.fail(ex, exc)
        except Exception:
            log.exception("unhandled error on %s", path)
            await self.fail(ex, internal_error(ctx.request_id))
        finally:
            ex.stop_watching()
            if ctx.meter is not None:
                await self.metering.settle(ctx)
            self.gateway.finish(ctx)
            self.access.emit(ctx, scope["method"], path, ex.status)
            request_id_var.reset(token)

    async def authenticate(self, ex: Exchange, hdrs: dict[bytes, bytes], admin: bool) -> Principal:
        p = await self.tenancy.authn.resolve(bytes(hdrs.get(b"authorization", b"")))
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
            body = await ex.body(self.limit)
            if body and not hdrs.get(b"content-type", b"").startswith(b"application/json"):
                raise BadRequest("Send the body as JSON with 'Content-Type: application/json'.",
                                 param="Content-Type", code="invalid_content_type")
        await self.admin_api.handle(ex, body)

    async def dispatch(self, ex: Exchange, path: str, hdrs: dict[bytes, bytes]) -> None:
        if path.startswith(ADMIN_API):
            return await self.admin_call(ex, hdrs)
        route = ROUTES.get(path) or self.ext.route(path)
        if route is None:
            raise NotFound(f"Unknown path: {path}", code="unknown_url")
        method, handler, needs_body, is_api = route
        if ex.scope["method"] != method:
            raise MethodNotAllowed(f"{path} accepts {method} only.")
        principal = await self.authenticate(ex, hdrs, path.startswith("/admin/")) if is_api else ANONYMOUS
        body = b""
        if needs_body:
            ctype = hdrs.get(b"content-type", b"")
            if not ctype.startswith(b"application/json"):
                raise BadRequest("Send the body as JSON with 'Content-Type: application/json'.",
                                 param="Content-Type", code="invalid_content_type")
            body = await ex.body(self.limit)
            if principal.key_id is not None or self.metering.limits_models(self.gateway.config):
                await self.admit(ex, principal, path, body)
            ex.watch_disconnect()
        await handler(ex, self.gateway, body)

    async def admit(self, ex: Exchange, principal: Principal, path: str, body: bytes) -> None:
        """Allowed models, then rate limits, parallel limits and budgets (tenancy/metering.py)."""
        head = read_head(body)
        if head is None:
            return  # not a valid body: the handler says what is wrong with it
        if not principal.may_use(head.model):
            raise ModelNotAllowed(head.model, principal.allowed_models or frozenset())
        if head.model is None or path not in METERED or not self.metering.applies(principal, head.model):
            return
        ex.resp_headers += await self.metering.admit(ex.ctx, principal, self.gateway.runtime.router, head.model,
                                                     head.prompt_estimate(), head.completion_cap())

    async def fail(self, ex: Exchange, exc: GatewayError) -> None:
        ex.ctx.error = exc.message
        if ex.started:  # headers already sent: nothing more can be said over HTTP
            ex.status = exc.status
            return
        extra = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
        await ex.json(error_status(exc), error_body(exc), extra)
