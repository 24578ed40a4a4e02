"""A small MCP server of the tests (the SDK's MCPServer, FastMCP's successor): over stdio
(`python peer.py stdio`) or Streamable HTTP (`python peer.py http PORT`)."""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("peer")


@server.tool()
def echo(text: str) -> str:
    """Repeat the text."""
    return text


@server.tool()
async def slow(seconds: float) -> str:
    """Answer after `seconds` (on stderr: when it starts, and if it is cancelled)."""
    print(f"slow {seconds:g}: started", file=sys.stderr, flush=True)
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        print(f"slow {seconds:g}: cancelled", file=sys.stderr, flush=True)
        raise
    return "done"


@server.tool()
def huge(size: int) -> str:
    """A text of `size` bytes."""
    return "x" * size


@server.tool()
def crash() -> str:
    """Exit the process at once, without answering."""
    os._exit(3)


@server.tool()
def environment() -> str:
    """The names of the environment variables this process has."""
    return ",".join(sorted(os.environ))


@server.tool()
def secret_tool() -> str:
    """A tool the access rules hide."""
    return "secret"


@server.prompt()
def greet(name: str) -> str:
    """A prompt with an argument."""
    return f"Say hello to {name}."


@server.prompt()
def secret_prompt() -> str:
    """A prompt the access rules hide."""
    return "secret"


@server.resource("note://greeting", mime_type="text/plain")
def greeting() -> str:
    """A small text resource."""
    return "hello from the peer"


@server.resource("note://secret", mime_type="text/plain")
def secret_note() -> str:
    """A resource the access rules hide."""
    return "secret"


@server.resource("note://huge", mime_type="text/plain")
def huge_note() -> str:
    """A resource over every test's result limit."""
    return "x" * 5_000_000


if __name__ == "__main__":
    if sys.argv[1] == "http":
        server.run("streamable-http", port=int(sys.argv[2]), stateless_http=True, json_response=True)
    else:
        server.run("stdio")
