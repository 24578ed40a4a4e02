"""The MCP gateway built from the config (cli/serve.py calls this only when `mcp.servers` is set,
so the `mcp` package is imported only then), and applied again on each config reload."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from clawdbot.config.schema import Config
from clawdbot.mcp.agent_http import HttpAgent
from clawdbot.mcp.endpoint import McpEndpoint
from clawdbot.mcp.hub import Hub
from clawdbot.mcp.record import CallRecords
from clawdbot.observability.metrics import Metrics
from clawdbot.pipeline.policy import Pipeline


def build_mcp(config: Config, env: Mapping[str, str], metrics: Metrics,
              pipeline: Pipeline | None = None) -> McpEndpoint:
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
        pipeline.gateway.reload_checks.append(lambda c: reloaded(hub, agent, c))
    return McpEndpoint(hub, config.server)


def reloaded(hub: Hub, agent: HttpAgent | None, config: Config) -> Callable[[], None]:
    """A config reload (pipeline/gateway.py's reload checks): what to do once the new config serves.
    Nothing in `mcp:` can make it unservable (every mistake is refused when the file loads)."""
    def commit() -> None:
        hub.calls.configure(config.metrics.key_labels, config.metrics.max_key_series)
        hub.apply(config.mcp)
        if agent is not None:
            agent.settings = config.mcp.agent
    return commit
