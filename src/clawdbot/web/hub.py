"""The web gateway layer's state, built once from the Config at start and passed to every socket:
the chat store, logical connections, runs in flight, rate limits and link health."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from clawdbot import __version__
from clawdbot.config.schema import Config
from clawdbot.core.networks import networks
from clawdbot.observability.timeline import Scope
from clawdbot.pipeline.gateway import Gateway
from clawdbot.pipeline.policy import Pipeline
from clawdbot.state.base import ChatStore
from clawdbot.tenancy.service import Tenancy
from clawdbot.tenancy.throttle import AuthThrottle
from clawdbot.web.auth import Principal
from clawdbot.web.connections import Connections
from clawdbot.web.debug import Debug
from clawdbot.web.ratelimit import SlidingWindow
from clawdbot.web.runs import Runs

if TYPE_CHECKING:
    from clawdbot.web.connections_redis import MirroredConnections
    from clawdbot.web.fleet import Fleet


class PanelView(Protocol):
    """What the socket's panel.* methods need of the control panel (web/panel.py)."""

    async def role(self, who: Principal | None) -> str | None: ...

    def overview_data(self, gateway: Gateway, scope: Scope | None = None) -> dict[str, Any]: ...


class Hub:
    def __init__(self, config: Config, pipeline: Pipeline, store: ChatStore, role: str, tenancy: Tenancy,
                 throttle: AuthThrottle | None = None, fleet: Fleet | None = None) -> None:
        web = config.web
        self.settings = web
        self.json_limits = (config.server.max_json_depth, config.server.max_json_items)  # of a chat frame
        self.pipeline = pipeline  # chats go through the same stages as /v1 (pipeline/policy.py)
        self.gateway = gateway = pipeline.gateway
        self.tenancy = tenancy
        self.store = store
        self.role = role
        self.version = __version__
        # with redis_url, shared with the other workers (web/fleet.py): resume and runs anywhere
        self.fleet = fleet
        self.shared_connections: MirroredConnections | None = fleet.connections if fleet is not None else None
        self.connections: Connections = (fleet.connections if fleet is not None
                                         else Connections(web.resume_seconds, web.resume_events))
        self.runs = Runs(fleet.runs if fleet is not None else None)
        self.per_user = SlidingWindow(web.rate_limits.per_user_per_minute)
        self.per_session = SlidingWindow(web.rate_limits.per_session_per_minute)
        self.per_user_changes = SlidingWindow(web.rate_limits.session_changes_per_minute)
        self.debug = Debug(config, gateway, role)
        self.allowed_origins = frozenset(o.strip().rstrip("/").lower() for o in web.allowed_origins)
        self.started = time.time()
        # the control panel (web/panel.py), set by the web layer: its socket methods (panel.watch)
        self.panel: PanelView | None = None
        # failed keys per address (tenancy/throttle.py), shared with /v1 and the login page
        srv = config.server
        self.throttle = throttle if throttle is not None else AuthThrottle(
            srv.auth_failures_burst, srv.auth_failures_per_minute, trusted=networks(srv.trusted_proxies))

    def default_model(self) -> str | None:
        """`web.default_model`, else the first name that resolves."""
        if self.settings.default_model:
            return self.settings.default_model
        models = self.gateway.resolver.models()
        return models[0].id if models else None

    async def start(self) -> None:
        await self.store.start()
        if self.fleet is not None:
            self.fleet.start()

    async def close(self) -> None:
        await self.runs.close()  # each stores what it has first
        self.connections.close()
        if self.fleet is not None:
            await self.fleet.close()
        await self.store.close()
