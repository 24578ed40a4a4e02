"""The MCP gateway built from the config (cli/serve.py calls this only when `mcp.servers` is set,
so the `mcp` package is imported only then), and applied again on each config reload."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from clawdbot.config.dump import MASK, masked, plain
from clawdbot.config.mcp_schema import Mcp
from clawdbot.config.schema import Config
from clawdbot.mcp.agent_http import HttpAgent
from clawdbot.mcp.endpoint import McpEndpoint
from clawdbot.mcp.hub import Hub
from clawdbot.mcp.record import CallRecords
from clawdbot.observability.metrics import Metrics
from clawdbot.pipeline.policy import Pipeline
from clawdbot.state.keys_base import KeyStore

log = logging.getLogger("clawdbot.mcp")
AUDIT_ACTOR = "config file"  # a reload's changes have no user: the file (SIGHUP, the watch) made them


def build_mcp(config: Config, env: Mapping[str, str], metrics: Metrics,
              pipeline: Pipeline | None = None, audit: KeyStore | None = None) -> McpEndpoint:
    """`audit`: the store of the audit log (there is one with a master key): a reload that changes
    `mcp:` leaves an `mcp.update` entry with the section before and after, values of headers and
    env masked."""
    hub = Hub(config.mcp, env, config.server.log_format == "json", pipeline.access.sink if pipeline else None,
              pipeline.metering.limiter if pipeline else None)  # Redis with `redis_url`: replicas share counts
    metrics.mcp_calls = hub.calls.snapshot
    metrics.mcp_key_calls = hub.calls.key_snapshot
    hub.calls.configure(config.metrics.key_labels, config.metrics.max_key_series)
    if pipeline is not None:  # each call a record in the request log, bodies masked as a model request's
        pl = pipeline
        hub.records = CallRecords(pl.request_log, lambda: [s.plugin for s in pl.chain.slots if s.plugin.name == "pii"])
    agent = None
    if pipeline is not None:  # the agent loop: /v1's X-Clawdbot-Tools, the chat page's `tools: true`
        agent = pipeline.agent = HttpAgent(hub, pipeline, config.mcp.agent)
        section = [config.mcp]  # the section now served, for the audit entry of the next change
        notes: set[asyncio.Task[None]] = set()  # audit writes in flight (referenced until done)
        pipeline.gateway.reload_checks.append(lambda c: reloaded(hub, agent, c, section, (audit, notes)))
    return McpEndpoint(hub, config.server)


def reloaded(hub: Hub, agent: HttpAgent | None, config: Config, section: list[Mcp],
             audit: tuple[KeyStore | None, set[asyncio.Task[None]]]) -> Callable[[], None]:
    """A config reload (pipeline/gateway.py's reload checks): what to do once the new config serves.
    Nothing in `mcp:` can make it unservable (every mistake is refused when the file loads)."""
    def commit() -> None:
        hub.calls.configure(config.metrics.key_labels, config.metrics.max_key_series)
        hub.apply(config.mcp)
        if agent is not None:
            agent.settings = config.mcp.agent
        before, section[0] = section[0], config.mcp
        store, notes = audit
        if store is not None and before != config.mcp:
            task = asyncio.get_running_loop().create_task(_note(store, before, config.mcp), name="mcp-audit")
            notes.add(task)
            task.add_done_callback(notes.discard)
    return commit


def audited(section: Mcp) -> dict[str, Any]:
    """What the audit log keeps of `mcp:`: its data with secret-named fields masked, and every
    header and env value too (they are typically ${ENV} references, expanded by now)."""
    data: dict[str, Any] = masked(plain(section))
    for server in data.get("servers", []):
        for field in ("headers", "env"):
            if isinstance(server.get(field), dict):
                server[field] = dict.fromkeys(server[field], MASK)
    return data


async def _note(store: KeyStore, before: Mcp, after: Mcp) -> None:
    try:
        await store.note(AUDIT_ACTOR, "mcp.update", None, audited(before), audited(after))
    except Exception as exc:  # the change is made: its entry is missing, say so
        log.error("the audit entry of an mcp: change could not be written: %s", exc)
