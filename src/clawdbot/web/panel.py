"""The control panel (docs/panel.md): its page, its overview data and the admin API under the page's
session, on the web layer's port.

Roles: `admin` is the master key, or a virtual key that may use the admin API (metadata `role:
admin`); `viewer` is a virtual key with metadata `panel_role: viewer` (reads everything the admin
API shows, changes nothing; the API never returns a key's secret after its creation). Without a
master key (loopback only) the local user is admin. Any other key has no panel.

The panel's calls to `/panel/api/admin/<path>` are the admin API's `/admin/api/<path>`, with the
caller taken from the session cookie instead of a Bearer token. Writes need the CSRF token of
`/auth/status` in `X-Clawdbot-CSRF` and a same-origin (or no) Origin; changes are audited by the
admin API under the session's user, as for a key."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import msgspec
from msgspec import UnsetType

from clawdbot.api.admin_api import AdminApi, ConflictError
from clawdbot.api.admin_queries import OverviewQuery
from clawdbot.api.app import ADMIN_BODY_BYTES
from clawdbot.api.exchange import Exchange
from clawdbot.api.http import decode_query, query_params
from clawdbot.api.routes import Route
from clawdbot.config.schema import Config, Deployment, ModelEntry
from clawdbot.core.errors import BadRequest, Forbidden, Unauthorized
from clawdbot.observability.history import RANGES, History
from clawdbot.observability.timeline import Scope, Timeline, scope_of, scope_view
from clawdbot.pipeline.gateway import Gateway
from clawdbot.pipeline.policy import Pipeline
from clawdbot.tenancy.service import Tenancy
from clawdbot.web.auth import Authenticator, Principal, origin_allowed
from clawdbot.web.debug import process_entry
from clawdbot.web.panel_config import ConfigEdits
from clawdbot.web.panel_requests import PREFIX as REQUESTS
from clawdbot.web.panel_requests import PanelRequests

PREFIX = "/panel/api/admin/"
MODELS = "/panel/api/models/"
SERVICES = "/panel/api/services/"
NO_STORE = [(b"cache-control", b"no-store")]
READS = ("GET", "HEAD")
_encode = msgspec.json.Encoder().encode
class Panel:
    def __init__(self, config: Config, pipeline: Pipeline, tenancy: Tenancy, auth: Authenticator,
                 allowed_origins: frozenset[str], env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.env = env if env is not None else {}  # ${VAR} in an edited file, as at start
        self.pipeline = pipeline
        self.tenancy = tenancy
        self.auth = auth
        self.allowed_origins = allowed_origins
        self.admin_api = AdminApi(tenancy, pipeline.check_key_metadata, pipeline.request_log)
        self.timeline = Timeline(pipeline.gateway.metrics.requests)
        store = pipeline.request_log.store
        self.history = History(store) if store is not None else None
        self.edits = ConfigEdits(tenancy, self.env)
        self.routes = {
            "/panel/api/overview": Route("GET", self.overview, False, False),
            "/panel/api/services": Route("GET", self.services, False, False),
            "/panel/api/service-test": Route("POST", self.test_service, True, False, max_body=ADMIN_BODY_BYTES),
            "/panel/api/plugins": Route("GET POST", self.plugins, True, False, max_body=ADMIN_BODY_BYTES),
        }
        # a JSON body (POST, PATCH) is read and bounded by api/app.py, as for the admin API itself
        self.admin_route = Route("GET POST PATCH DELETE", self.admin, True, False, max_body=ADMIN_BODY_BYTES)
        self.models_route = Route("POST", self.edit_model, True, False, max_body=ADMIN_BODY_BYTES)
        self.services_route = Route("POST", self.edit_service, True, False, max_body=ADMIN_BODY_BYTES)
        # replay and open in chat, for one request of the log (web/panel_requests.py)
        self.requests = PanelRequests(self, pipeline, tenancy)
        # the paths with a name in them, as /openapi.json names them
        self.templates = {MODELS + "{id}": self.models_route, SERVICES + "{id}": self.services_route,
                          **self.requests.templates}

    def route(self, path: str) -> Route | None:
        found = self.routes.get(path)
        if found is not None:
            return found
        if path.startswith(PREFIX):
            return self.admin_route
        if path.startswith(MODELS):
            return self.models_route
        if path.startswith(REQUESTS):
            return self.requests.route(path)
        return self.services_route if path.startswith(SERVICES) else None

    def start(self) -> None:
        self.timeline.start()

    async def close(self) -> None:
        await self.timeline.close()

    # -- who may do what ---------------------------------------------------------------------

    async def role(self, who: Principal | None) -> str | None:
        """admin, viewer or None (no panel) for a session's principal."""
        return (await self._resolve(who))[1]

    async def _resolve(self, who: Principal | None) -> tuple[str, str | None]:
        """(the actor the audit log names, as for a Bearer call: `master` or the key's id; the role)."""
        if who is None:
            return "", None
        if who.kind in ("local", "admin"):
            return "master", "admin"
        if who.key_hash is None:
            return who.user, None
        try:
            p = await self.tenancy.authn.resolve_hash(who.key_hash)
        except Unauthorized:  # revoked or expired since the login: the cookie is worth nothing now
            return who.user, None
        if p.is_admin:
            return p.name, "admin"
        return p.name, "viewer" if p.metadata.get("panel_role") == "viewer" else None

    async def _caller(self, ex: Exchange, write: bool) -> str:
        """The actor of a panel call, once its session, role and (for a write) Origin and CSRF
        token have passed."""
        hdrs = dict(ex.scope["headers"])
        who = self.auth.principal(hdrs)
        if who is None:
            raise Unauthorized("Log in first (POST /auth/login).", code="login_required")
        actor, role = await self._resolve(who)
        if role is None:
            raise Forbidden("This key has no access to the control panel (it needs the admin role, or "
                            "metadata panel_role: viewer).", code="panel_forbidden")
        if write:
            if not origin_allowed(hdrs, self.allowed_origins):
                raise Forbidden("This origin may not change the gateway.", code="forbidden_origin")
            if not self.auth.csrf_ok(hdrs):
                raise Forbidden("Send the X-Clawdbot-CSRF token of /auth/status with every change.",
                                code="csrf_failed")
            if role != "admin":
                raise Forbidden("A viewer may not change anything.", code="panel_read_only")
        return actor

    # -- the overview -------------------------------------------------------------------------

    async def overview(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        await self._caller(ex, write=False)
        q = decode_query(query_params(ex.scope), OverviewQuery)
        model = None if isinstance(q.model, UnsetType) else q.model
        service = None if isinstance(q.service, UnsetType) else q.service
        scope = scope_of(pl.gateway.config, model, service)
        out = self.overview_data(pl.gateway, scope)
        if q.range != "1h":
            if self.history is None:
                raise ConflictError("Ranges longer than an hour are read from the request log: set "
                                    "request_log.enabled: true.", code="request_log_disabled")
            out.update(await self.history.view(q.range, scope), range=q.range)
        await ex.json(200, _encode(out), NO_STORE)

    def overview_data(self, gateway: Gateway, scope: Scope | None = None) -> dict[str, Any]:
        """The overview of the last hour, of all traffic or of one scope: GET /panel/api/overview,
        and the socket's panel.overview events."""
        entry = process_entry(gateway, "panel", "")
        services = [{
            "name": name, "type": s["type"], "reachable": s["reachable"], "latency_ms": s["probeLatencyMs"],
            "breaker": s["circuit"] or "closed", "inflight": s["inFlight"], "queued": s["queued"],
            "detail": s["lastError"], "checked_at": gateway.monitor.states[name].checked_at,
        } for name, s in entry["services"].items()]
        series, served = self.timeline.view(scope)
        ranges = ["1h", *RANGES] if self.history is not None else ["1h"]
        return {"now": time.time(), "bucket_s": self.timeline.bucket_s, "series": series, "range": "1h",
                "ranges": ranges, "scope": scope_view(scope),
                "services": services, "models": self._models(gateway.config, served)}

    def _models(self, config: Config, served: dict[tuple[str, str], int]) -> list[dict[str, Any]]:
        out = []
        for name, entry in config.models.items():
            e = entry if isinstance(entry, ModelEntry) else ModelEntry(targets=list(entry))
            deps = [d if isinstance(d, Deployment) else _target(d) for d in (e.deployments or [])]
            deps += [_target(t) for t in e.targets]
            out.append({"name": name, "strategy": e.strategy, "fallbacks": e.fallbacks, "deployments": [
                {"service": d.service, "model": d.model, "weight": d.weight, "priority": d.priority,
                 "requests": served.get((name, d.service), 0)} for d in deps]})
        return out

    # -- the admin API under the session ------------------------------------------------------

    async def admin(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        method = ex.scope["method"]
        actor = await self._caller(ex, write=method not in READS)
        ex.ctx.principal = actor  # the audit log's actor
        await self.admin_api.handle(ex, body, ex.scope["path"][len(PREFIX):])

    # -- the config file: routes, services, plugins (web/panel_config.py) -----------------------

    async def edit_model(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        actor = await self._caller(ex, write=True)
        out = await self.edits.model(pl.gateway, actor, _name(ex, MODELS), body)
        await ex.json(200, _encode(out), NO_STORE)

    async def edit_service(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        actor = await self._caller(ex, write=True)
        out = await self.edits.service(pl.gateway, actor, _name(ex, SERVICES), body)
        await ex.json(200, _encode(out), NO_STORE)

    async def services(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        await self._caller(ex, write=False)
        await ex.json(200, _encode(await self.edits.services(pl.gateway)), NO_STORE)

    async def plugins(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        if ex.scope["method"] == "GET":
            await self._caller(ex, write=False)
            out = await self.edits.plugin_catalogue(pl.gateway)
            # what each plugin (by its configured id) did in the last hour: read from the counters
            # /metrics exports (clawdbot_plugin_actions), windowed by the timeline's ticks
            out["actions"], out["actions_window_s"] = self.timeline.plugin_actions()
            await ex.json(200, _encode(out), NO_STORE)
            return
        actor = await self._caller(ex, write=True)
        await ex.json(200, _encode(await self.edits.plugins(pl.gateway, actor, body)), NO_STORE)

    async def test_service(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        await self._caller(ex, write=True)  # it makes the gateway call out: an admin's, like a change
        await ex.json(200, _encode(await self.edits.test(pl.gateway, body)), NO_STORE)


def _name(ex: Exchange, prefix: str) -> str:
    name: str = ex.scope["path"][len(prefix):]
    if not name or "/" in name:
        raise BadRequest(f"Name one: POST {prefix}<name>.", code="invalid_value")
    return name


def _target(text: str) -> Deployment:
    service, _, model = text.partition("/")
    return Deployment(service=service, model=model or None)
