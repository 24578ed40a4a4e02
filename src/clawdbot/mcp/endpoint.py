"""POST /mcp: clawdbot's own MCP endpoint (Streamable HTTP). The SDK's low-level server and its
Streamable HTTP session manager (stateless, JSON responses) speak the protocol, both the
initialize-handshake era and the 2026 one; the gateway's dispatch has authenticated the caller
first (api/app.py), and the handlers below ask the hub (hub.py) with that caller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError

from clawdbot import __version__
from clawdbot.api.exchange import Exchange
from clawdbot.api.http import Message
from clawdbot.api.routes import Route
from clawdbot.codecs.bounds import check_json_shape
from clawdbot.config.schema import Server as ServerSettings
from clawdbot.mcp.catalog import Catalog, Failed, UnknownName
from clawdbot.mcp.hub import Caller, Hub, RateLimited, UnknownTool
from clawdbot.pipeline.policy import Pipeline
from clawdbot.tenancy.principal import ANONYMOUS

log = logging.getLogger("clawdbot.mcp")
PATH = "/mcp"
CALLER = "clawdbot.mcp.caller"  # the scope key the handlers read the authenticated caller from
RATE_LIMITED = -32029  # a JSON-RPC error code in the implementation-defined range: retry later


def _caller(ctx: ServerRequestContext[Any, Any]) -> Caller:
    request = ctx.request
    caller = request.scope.get(CALLER) if request is not None else None
    if not isinstance(caller, Caller):  # only reachable through /mcp, which sets it: never expected
        raise MCPError(code=types.INTERNAL_ERROR, message="unauthenticated MCP request")
    return caller


@contextlib.contextmanager
def _answers(kind: str, name: str) -> Iterator[None]:
    """A prompt's or resource's failures as the JSON-RPC errors a client sees (there is no error
    result for them, as there is for a tool)."""
    try:
        yield
    except UnknownName:
        raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown {kind}: {name[:200]}") from None
    except RateLimited as exc:
        raise MCPError(code=RATE_LIMITED, message=str(exc), data={"retry_after": exc.retry_after}) from None
    except Failed as exc:
        raise MCPError(code=exc.code, message=str(exc)) from None


class McpEndpoint:
    def __init__(self, hub: Hub, settings: ServerSettings) -> None:
        self.hub = hub
        self.settings = settings
        self.catalog = Catalog(hub)
        self.server: Server[Any] = Server(
            "clawdbot", version=__version__, on_list_tools=self._list_tools, on_call_tool=self._call_tool,
            on_list_prompts=self._list_prompts, on_get_prompt=self._get_prompt,
            on_list_resources=self._list_resources, on_read_resource=self._read_resource)
        self.manager = StreamableHTTPSessionManager(self.server, json_response=True, stateless=True,
                                                    max_request_body_size=settings.max_body_bytes)
        self.routes = {PATH: Route("POST", self.handle, False, True)}
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def route(self, path: str) -> Route | None:
        return self.routes.get(path)

    async def start(self) -> None:
        await self.hub.start()
        ready = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(ready), name="mcp-endpoint")
        await ready.wait()

    async def _run(self, ready: asyncio.Event) -> None:
        async with self.manager.run():  # entered and left in this one task (an anyio task group)
            ready.set()
            await self._stop.wait()

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        await self.hub.close()

    async def _list_tools(self, ctx: ServerRequestContext[Any, Any],
                          params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=await self.hub.list_tools(_caller(ctx)))

    async def _call_tool(self, ctx: ServerRequestContext[Any, Any],
                         params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            return await self.hub.call_tool(_caller(ctx), params.name, params.arguments)
        except UnknownTool:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name[:200]}") from None
        except RateLimited as exc:
            raise MCPError(code=RATE_LIMITED, message=str(exc), data={"retry_after": exc.retry_after}) from None

    async def _list_prompts(self, ctx: ServerRequestContext[Any, Any],
                            params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=await self.catalog.list_prompts(_caller(ctx)))

    async def _get_prompt(self, ctx: ServerRequestContext[Any, Any],
                          params: types.GetPromptRequestParams) -> types.GetPromptResult:
        with _answers("prompt", params.name):
            return await self.catalog.get_prompt(_caller(ctx), params.name, params.arguments)

    async def _list_resources(self, ctx: ServerRequestContext[Any, Any],
                              params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=await self.catalog.list_resources(_caller(ctx)))

    async def _read_resource(self, ctx: ServerRequestContext[Any, Any],
                             params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        with _answers("resource", params.uri):
            return await self.catalog.read_resource(_caller(ctx), params.uri)

    async def handle(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        """The body is read (bounded, shape-checked) here, then handed to the SDK as if it were
        arriving; the client going away cancels this task, and with it the tool call."""
        body = await ex.body(self.settings.max_body_bytes)
        check_json_shape(body, self.settings.max_json_depth, self.settings.max_json_items)
        ex.scope[CALLER] = Caller(ex.ctx.identity or ANONYMOUS, ex.ctx.request_id)
        answered = asyncio.Event()
        sent_body = False

        async def receive() -> Message:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await answered.wait()  # the real receive is the disconnect watcher's (Exchange)
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                ex.status, ex.started = message["status"], True
                message["headers"] = [*message.get("headers", []), *ex.resp_headers]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                ex.stop_watching()  # answered: a disconnect from now on is not a client gone
                answered.set()
            await ex.send(message)

        ex.watch_disconnect()
        try:
            await self.manager.handle_request(ex.scope, receive, send)
        finally:
            answered.set()
