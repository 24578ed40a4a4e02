"""The MCP gateway: upstream MCP servers (stdio, Streamable HTTP) behind one governed /mcp endpoint.
Imported only when the config has `mcp.servers` (it needs the `mcp` extra)."""

from __future__ import annotations

import importlib.util


def missing_extra() -> str | None:
    """Why the MCP gateway cannot run here, if it cannot (checked before anything imports the SDK)."""
    if importlib.util.find_spec("mcp") is None:
        return "`mcp:` needs the mcp extra: pip install 'clawdbot[mcp]'"
    return None
