"""The MCP gateway built from the config (cli/serve.py calls this only when `mcp.servers` is set,
so the `mcp` package is imported only then)."""

from __future__ import annotations

from collections.abc import Mapping

from clawdbot.config.schema import Config
from clawdbot.mcp.endpoint import McpEndpoint
from clawdbot.mcp.hub import Hub
from clawdbot.observability.metrics import Metrics


def build_mcp(config: Config, env: Mapping[str, str], metrics: Metrics) -> McpEndpoint:
    hub = Hub(config.mcp, env, config.server.log_format == "json")
    metrics.mcp_calls = hub.calls.snapshot
    return McpEndpoint(hub, config.server)

