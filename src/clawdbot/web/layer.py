"""What the web gateway layer adds to the ASGI app (api/app.py): the page and its files, `/auth/*`,
the chat socket at `/ws`, and `/debug/stats`. `clawdbot proxy` gets `StatsOnly`: no page, no
socket, only its numbers for the gateway in front of it."""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

from clawdbot.api.exchange import Exchange
from clawdbot.api.http import Receive, Scope, Send, deny
from clawdbot.api.routes import Route
from clawdbot.config.schema import Config
from clawdbot.core.errors import BadRequest, Forbidden, NotFound, Unauthorized
from clawdbot.core.networks import networks
from clawdbot.pipeline.gateway import Gateway
from clawdbot.pipeline.policy import Pipeline
from clawdbot.state.base import ChatStore
from clawdbot.tenancy.errors import TooManyFailedAttempts
from clawdbot.tenancy.service import Tenancy
from clawdbot.tenancy.throttle import AuthThrottle
from clawdbot.web.auth import ADMIN, SHARED_SECRET_ENV, Authenticator, Principal, origin_allowed
from clawdbot.web.debug import Debug
from clawdbot.web.fleet import Fleet
from clawdbot.web.hub import Hub
from clawdbot.web.panel import Panel
from clawdbot.web.socket import own_url, serve_socket
from clawdbot.web.static_files import StaticFile, StaticFiles

_encode = msgspec.json.Encoder().encode
LOGIN_BODY_BYTES = 4096  # {"key": "..."}: read no more than that before looking at it


class LoginBody(msgspec.Struct):
    key: str


def _headers(ex: Exchange) -> dict[bytes, bytes]:
    return dict(reversed(ex.scope["headers"]))


def _secure(ex: Exchange) -> bool:
    return ex.scope.get("scheme") == "https"


async def _stats(ex: Exchange, debug: Debug) -> None:
    await ex.json(200, _encode(debug.own(own_url(ex.scope, _headers(ex)))), [(b"cache-control", b"no-store")])


class WebLayer:
    def __init__(self, config: Config, pipeline: Pipeline, store: ChatStore, role: str, tenancy: Tenancy,
                 throttle: AuthThrottle | None = None, env: Mapping[str, str] | None = None,
                 fleet: Fleet | None = None) -> None:
        srv = config.server  # an AuthThrottle is falsy while empty: compare with None
        self.throttle = throttle if throttle is not None else AuthThrottle(
            srv.auth_failures_burst, srv.auth_failures_per_minute, trusted=networks(srv.trusted_proxies))
        self.tenancy = tenancy
        self.hub = Hub(config, pipeline, store, role, tenancy, self.throttle, fleet)
        self.auth = Authenticator(config.server.master_key, os.environ.get(SHARED_SECRET_ENV))
        self.static = StaticFiles()
        self.panel = Panel(config, pipeline, tenancy, self.auth, self.hub.allowed_origins, env)
        self.hub.panel = self.panel
        self.panel.requests.hub = self.hub  # open in chat writes to the chat page's store
        self.routes: dict[str, Route] = {
            "/": Route("GET", self.index, False, False),
            "/panel": Route("GET", self.panel_page, False, False),
            "/auth/login": Route("POST", self.login, True, False, max_body=LOGIN_BODY_BYTES),
            "/auth/logout": Route("POST", self.logout, False, False),
            "/auth/status": Route("GET", self.auth_status, False, False),
            "/debug/stats": Route("GET", self.debug_stats, False, True),
        }
        self._static_route = Route("GET", self.static_file, False, False)

    def route(self, path: str) -> Route | None:
        found = self.routes.get(path) or self.panel.route(path)
        if found is not None:
            return found
        # The page links its files relatively (app.css, js/main.js), so they are served beside
        # `/` as well as under /static/. API routes come first and cannot be shadowed.
        if path.startswith("/static/") or self.static.resolve(path[1:]) is not None:
            return self._static_route
        return None

    async def start(self) -> None:
        await self.hub.start()
        self.panel.start()

    async def close(self) -> None:
        await self.panel.close()
        await self.hub.close()

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] != "/ws":
            await receive()
            await deny(scope, send, 404, "not_found", f"No socket at {scope['path']}.")
            return
        await serve_socket(self.hub, self.auth, scope, receive, send)

    # -- the page ---------------------------------------------------------------------------

    async def index(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        await self._file(ex, "index.html")

    async def panel_page(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        await self._file(ex, "panel.html")

    async def static_file(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        path: str = ex.scope["path"]
        await self._file(ex, path.removeprefix("/static/") if path.startswith("/static/") else path[1:])

    async def _file(self, ex: Exchange, rel: str) -> None:
        f = await self.static.load(rel)
        if f is None:
            raise NotFound(f"Unknown path: {ex.scope['path']}", code="unknown_url")
        if _headers(ex).get(b"if-none-match") == f.etag:
            await ex.start(304, f.content_type, f.headers())
            await ex.end()
            return
        await self._send(ex, f)

    @staticmethod
    async def _send(ex: Exchange, f: StaticFile) -> None:
        await ex.start(200, f.content_type, [(b"content-length", str(len(f.body)).encode()), *f.headers()])
        await ex.end(f.body)

    # -- auth -------------------------------------------------------------------------------

    def _check_origin(self, ex: Exchange) -> None:
        # The cookie is SameSite=Strict and login needs a JSON body; refusing foreign origins here
        # as on /ws closes the rest (login CSRF).
        if not origin_allowed(_headers(ex), self.hub.allowed_origins):
            raise Forbidden("This origin may not use the gateway's login.", code="forbidden_origin")

    async def login(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        self._check_origin(ex)
        if not self.auth.required:
            await ex.json(200, b'{"required":false,"authenticated":true,"user":"local"}')
            return
        addr = self.throttle.address(ex.scope)
        wait = self.throttle.wait(addr)
        if wait:
            raise TooManyFailedAttempts(f"Too many failed logins from this address; try again in {wait} s.",
                                        headers={"Retry-After": str(wait)})
        try:
            key = msgspec.json.decode(body, type=LoginBody).key
        except msgspec.DecodeError:
            raise BadRequest('Send {"key": "<master key or virtual key>"}.', param="key",
                             code="invalid_value") from None
        who = ADMIN if self.auth.check_key(key) else await self._virtual_key(key, addr)
        cookie = self.auth.set_cookie(who, _secure(ex))
        await ex.json(200, _encode({"required": True, "authenticated": True, "user": who.user}),
                      [(b"set-cookie", cookie), (b"cache-control", b"no-store")])

    async def _virtual_key(self, key: str, addr: str) -> Principal:
        """A virtual key's user: chats owned by the key's user (or the key), charged to the key."""
        authn = self.tenancy.authn
        key_hash = authn.hash_of(key)
        if key_hash is None:
            self.throttle.failed(addr)
            raise Unauthorized("Invalid key.")
        try:
            p = await authn.resolve_hash(key_hash)
        except Unauthorized as exc:
            if exc.code == "invalid_api_key":
                self.throttle.failed(addr)
            raise
        return Principal(f"user:{p.user_id}" if p.user_id else f"key:{p.key_id}", "key", key_hash)

    async def logout(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        self._check_origin(ex)
        await ex.json(200, _encode({"required": self.auth.required, "authenticated": False}),
                      [(b"set-cookie", self.auth.clear_cookie(_secure(ex))), (b"cache-control", b"no-store")])

    async def auth_status(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        hdrs = _headers(ex)
        who = self.auth.principal(hdrs)
        out: dict[str, object] = {"required": self.auth.required, "authenticated": who is not None}
        if who is not None:
            out["user"] = who.user
            out["role"] = await self.panel.role(who)  # the control panel's: admin, viewer or null
            out["csrf"] = self.auth.csrf(hdrs)
        await ex.json(200, _encode(out), [(b"cache-control", b"no-store")])

    async def debug_stats(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        await _stats(ex, self.hub.debug)


class StatsOnly:
    """`clawdbot proxy`: the proxy layer serves no page and no socket (web.enabled: false)."""

    def __init__(self, config: Config, gateway: Gateway, role: str) -> None:
        self.debug = Debug(config, gateway, role)
        self._route = Route("GET", self.debug_stats, False, True)

    def route(self, path: str) -> Route | None:
        return self._route if path == "/debug/stats" else None

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await deny(scope, send, 404, "not_found", "This process serves no chat socket.")

    async def debug_stats(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        await _stats(ex, self.debug)

