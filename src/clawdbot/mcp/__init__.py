"""The MCP gateway: upstream MCP servers (stdio, Streamable HTTP) behind one governed /mcp endpoint.
Imported only when the config has `mcp.servers` (it needs the `mcp` extra)."""

from __future__ import annotations

import importlib.util
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clawdbot.config.schema import Config


def missing_extra() -> str | None:
    """Why the MCP gateway cannot run here, if it cannot (checked before anything imports the SDK)."""
    if importlib.util.find_spec("mcp") is None:
        return "`mcp:` needs the mcp extra: pip install 'clawdbot[mcp]'"
    return None


def needs_restart(config: Config) -> None:
    """A reload check for a gateway started without `mcp.servers`: /mcp and its servers are built
    at start only, so a reloaded file that lists some says that a restart is needed."""
    if config.mcp.servers:
        logging.getLogger("clawdbot.mcp").warning(
            "mcp.servers were added to the config file; the MCP gateway starts at the next restart")
