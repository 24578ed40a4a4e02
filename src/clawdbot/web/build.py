"""The web gateway layer for a process, from the Config: the chat page, socket and store when
`web.enabled` (serve, gateway), or only the numbers for `/debug/stats` (proxy)."""

from __future__ import annotations

from collections.abc import Mapping

from clawdbot.config.schema import Config
from clawdbot.pipeline.policy import Pipeline
from clawdbot.state.base import ChatStore
from clawdbot.state.build import build_chat_store, database_url
from clawdbot.state.memory import MemoryChatStore
from clawdbot.tenancy.service import Tenancy
from clawdbot.tenancy.throttle import AuthThrottle
from clawdbot.web.fleet import build_fleet
from clawdbot.web.layer import StatsOnly, WebLayer

MEMORY_URL = "memory://"


def open_store(config: Config, env: Mapping[str, str]) -> ChatStore:
    """`memory://` keeps chats in the process; anything else is a SQL database (SQLite by default).
    Raises ValueError for a URL no store understands."""
    url = env.get("CLAWDBOT_DATABASE_URL") or config.database_url
    if url is not None and url.startswith("memory:"):
        return MemoryChatStore()
    return build_chat_store(database_url(config, env))


def build_web(config: Config, pipeline: Pipeline, tenancy: Tenancy, role: str, env: Mapping[str, str],
              throttle: AuthThrottle | None = None) -> WebLayer | StatsOnly:
    """`throttle`: the failed-key budget shared with /v1 (api/app.py), so guesses on the login page
    and on the API count together."""
    if not config.web.enabled:
        return StatsOnly(config, pipeline.gateway, role)
    # with redis_url, sockets resume and runs are seen on every worker sharing it (web/fleet.py)
    return WebLayer(config, pipeline, open_store(config, env), role, tenancy, throttle, env,
                    build_fleet(config, env))
