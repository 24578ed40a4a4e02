"""The servers' prompts and resources as one caller sees them, aggregated like the tools (hub.py):
prompts under `server.prompt`, resources under `server.` + their URI (`peer.note://greeting`),
filtered by the same grant (globs over those names: a hidden one is absent and refused alike),
each get or read admitted (calls per minute), bounded (time, size) and written to the access log."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import mcp_types as types
from mcp import Client
from mcp.shared.exceptions import MCPError

from clawdbot.mcp import calls
from clawdbot.mcp.access import Grant
from clawdbot.mcp.hub import Caller, Hub
from clawdbot.mcp.upstream import TooLarge, Unavailable, Upstream

log = logging.getLogger("clawdbot.mcp")
R = TypeVar("R", types.GetPromptResult, types.ReadResourceResult)


class UnknownName(Exception):
    """No such prompt or resource, or one the caller may not see: the same answer."""


class Failed(Exception):
    """The server timed out, is unavailable, answered too much or answered an error (its code)."""

    def __init__(self, text: str, code: int = types.INTERNAL_ERROR) -> None:
        super().__init__(text)
        self.code = code


class Catalog:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def list_prompts(self, caller: Caller) -> list[types.Prompt]:
        async def of(u: Upstream, grant: Grant) -> list[types.Prompt]:
            return [p.model_copy(update={"name": f"{u.name}.{p.name}"})
                    for p in await _listed(u, u.list_prompts, "prompts") if grant.tool(u.name, p.name)]
        return await self._gather(caller, of)

    async def list_resources(self, caller: Caller) -> list[types.Resource]:
        async def of(u: Upstream, grant: Grant) -> list[types.Resource]:
            return [r.model_copy(update={"uri": f"{u.name}.{r.uri}"})
                    for r in await _listed(u, u.list_resources, "resources") if grant.tool(u.name, r.uri)]
        return await self._gather(caller, of)

    async def _gather(self, caller: Caller, of: Callable[[Upstream, Grant], Awaitable[list[Any]]]) -> list[Any]:
        grant = self.hub.access.grant(caller.principal)
        visible = [u for u in self.hub.upstreams.values() if grant.server(u.name)]
        listed = await asyncio.gather(*(of(u, grant) for u in visible))
        return [item for items in listed for item in items]

    async def get_prompt(self, caller: Caller, name: str, arguments: dict[str, str] | None) -> types.GetPromptResult:
        return await self._use(caller, name, calls.PROMPT, lambda c, inner: c.get_prompt(inner, arguments),
                               _has_prompt, arguments)

    async def read_resource(self, caller: Caller, uri: str) -> types.ReadResourceResult:
        result = await self._use(caller, uri, calls.RESOURCE, lambda c, inner: c.read_resource(inner))
        server = uri.partition(".")[0]  # the contents' URIs as the caller knows them
        return result.model_copy(update={"contents": [
            c.model_copy(update={"uri": f"{server}.{c.uri}"}) for c in result.contents]})

    async def _use(self, caller: Caller, name: str, event: str, request: Callable[[Client, str], Awaitable[R]],
                   exists: Callable[[Upstream, str], Awaitable[bool]] | None = None, arguments: Any = None) -> R:
        hub, started = self.hub, time.perf_counter()
        server, dot, inner = name.partition(".")
        u = hub.upstreams.get(server) if dot else None
        grant = hub.access.grant(caller.principal)
        if u is None or not grant.tool(server, inner) or (exists is not None and not await exists(u, inner)):
            hub.done(caller, "", "", calls.UNKNOWN, started, None, event)
            raise UnknownName(name)
        await hub.admit(caller, grant, server, inner, started, event)
        limit = min(u.server.max_result_bytes, grant.max_result_bytes or u.server.max_result_bytes)
        status, size = calls.FAILED, None
        result: R | None = None
        try:
            async with asyncio.timeout(u.server.timeout):
                result = await u.use(lambda c: request(c, inner))
            u.succeeded()
            size = len(result.model_dump_json(by_alias=True, exclude_none=True))
            if size > limit:
                status = calls.TOO_LARGE
                raise Failed(f"result_too_large: the result is {size} bytes; the limit is {limit}")
            status = calls.OK
            return result
        except TimeoutError:
            status = calls.TIMEOUT
            raise Failed(f"timeout: the server did not answer within {u.server.timeout} s") from None
        except Unavailable as exc:
            status = calls.UNAVAILABLE
            raise Failed(f"unavailable: {exc}") from None
        except TooLarge:
            status = calls.TOO_LARGE
            raise Failed(f"result_too_large: the result exceeds {limit} bytes") from None
        except MCPError as exc:
            raise Failed(f"error from MCP server {u.name!r}: {exc.error.message[:500]}",
                         exc.error.code or types.INTERNAL_ERROR) from None
        except asyncio.CancelledError:
            status = calls.CANCELLED
            raise
        finally:
            hub.done(caller, server, inner, status, started, size, event, arguments, result)


async def _has_prompt(u: Upstream, name: str) -> bool:
    """As for a tool (hub.py): an allowed name the server does not list gets the answer a hidden one
    gets; a server that cannot list now is given the benefit of the doubt."""
    try:
        async with asyncio.timeout(u.server.connect_timeout + u.server.timeout):
            return any(p.name == name for p in await u.list_prompts())
    except (Unavailable, TooLarge, MCPError, TimeoutError, OSError):
        return True


async def _listed(u: Upstream, fetch: Callable[[], Awaitable[list[Any]]], what: str) -> list[Any]:
    try:
        async with asyncio.timeout(u.server.connect_timeout + u.server.timeout):
            return await fetch()
    except (Unavailable, TooLarge, MCPError, TimeoutError, OSError) as exc:
        log.warning("mcp server %s: %s/list failed (%s); its %s are left out", u.name, what, exc, what)
        return []
