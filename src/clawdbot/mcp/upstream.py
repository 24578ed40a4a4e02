"""One upstream MCP server: a client session started on first use, held open by a task of its own
(the SDK's sessions are entered and left in one task), restarted with backoff after a failure and
stopped when idle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from clawdbot.config.mcp_schema import McpServer
from clawdbot.mcp.bounded import TOO_LARGE, bounded_client, read_cap
from clawdbot.mcp.stdio import TOO_LARGE as STDIO_TOO_LARGE
from clawdbot.mcp.stdio import Launch, launch_of, line_limit, stdio_transport

log = logging.getLogger("clawdbot.mcp")
MAX_TOOL_PAGES = 20  # list pages (tools, prompts, resources) read from one server (a paginator that never ends)
MAX_TOOLS = 1000  # tools (prompts, resources) kept of one server
T = TypeVar("T")


class Unavailable(Exception):
    """The server cannot be reached now (does not start, crashed, restarting)."""


class TooLarge(Exception):
    """The answer was cut while it was read (bounded.py), or the SDK dropped an oversized event."""


class Upstream:
    def __init__(self, server: McpServer, env: Mapping[str, str]) -> None:
        self.server = server
        self.name = server.name
        self.launch: Launch | None = launch_of(server, env) if server.stdio else None
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._up = asyncio.Event()  # set when the session is ready or failed to start
        self._stop = asyncio.Event()
        self._start_lock = asyncio.Lock()
        self._error: str | None = None
        self.failures = 0  # consecutive: the next restart waits restart_backoff * 2**(failures-1)
        self._not_before = 0.0  # monotonic time before which no restart is tried
        self.tools: list[types.Tool] | None = None  # listed once per session
        self.in_flight = 0
        self._idle = asyncio.Event()  # set while no call is in flight
        self._idle.set()
        self.retired = False  # removed or replaced by a config reload: never started again
        self.last_used = time.monotonic()
        self.restarts = 0

    @property
    def running(self) -> bool:
        return self._client is not None

    async def client(self) -> Client:
        """The live session, started (or restarted, after its backoff) if there is none."""
        self.last_used = time.monotonic()
        c = self._client
        if c is not None and not self._stop.is_set():
            return c
        if self.retired:
            raise Unavailable(f"MCP server {self.name!r} was removed or replaced by a config reload")
        async with self._start_lock:
            c = self._client
            if c is not None and not self._stop.is_set():
                return c
            await self._halt()
            wait = self._not_before - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # the backoff: bounded by the caller's own timeout
            return await self._start()

    async def _start(self) -> Client:
        self._up, self._stop, self._error = asyncio.Event(), asyncio.Event(), None
        self.tools = None
        self._task = asyncio.get_running_loop().create_task(self._hold(), name=f"mcp-{self.name}")
        try:
            async with asyncio.timeout(self.server.connect_timeout):
                await self._up.wait()
        except TimeoutError:
            self._failed(f"did not start within {self.server.connect_timeout} s")
            await self._halt()
            raise Unavailable(f"MCP server {self.name!r} did not start in time") from None
        if self._client is None:
            raise Unavailable(f"MCP server {self.name!r} is unavailable: {self._error}")
        return self._client

    async def _hold(self) -> None:
        """Enter the session, then keep it until told to stop or the process exits."""
        try:
            async with self._client_for() as client:
                self._client = client
                self._up.set()
                if self.restarts:
                    log.info("mcp server %s restarted (%d)", self.name, self.restarts)
                self.restarts += 1
                await self._stop.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a process that will not start, an HTTP server that refuses, ...
            self._failed(_describe(exc))
        finally:
            self._client = None
            self._up.set()

    def _client_for(self) -> Client:
        s = self.server
        if self.launch is not None:
            transport = stdio_transport(self.name, self.launch, line_limit(s.max_result_bytes), self._exited)
        else:
            assert s.url is not None
            cap = read_cap(s.max_result_bytes)
            http = bounded_client(s.headers, httpx2.Timeout(s.timeout, connect=s.connect_timeout), cap)
            transport = _owned(http, streamable_http_client(s.url, http_client=http, max_sse_event_size=cap))
        return Client(transport, mode="legacy", cache=None, client_info=types.Implementation(
            name="clawdbot", version="1"))

    def _exited(self) -> None:
        if not self._stop.is_set():
            self._failed("the process exited")
            self._stop.set()

    def _failed(self, why: str) -> None:
        self._error = why
        self.failures += 1
        delay = min(self.server.restart_backoff * 2 ** (self.failures - 1), self.server.restart_backoff_max)
        self._not_before = time.monotonic() + delay
        log.warning("mcp server %s failed: %s (next start in %.1f s at the earliest)", self.name, why, delay)

    def succeeded(self) -> None:
        self.failures = 0

    def broken(self, why: str) -> None:
        """A call found the connection dead: restart on the next use."""
        if not self._stop.is_set():
            self._failed(why)
            self._stop.set()

    async def list_tools(self) -> list[types.Tool]:
        if self.tools is not None and self.running:
            return self.tools
        client = await self.client()
        self.tools = await _pages(lambda cursor: client.list_tools(cursor=cursor), "tools")
        return self.tools

    async def list_prompts(self) -> list[types.Prompt]:
        client = await self.client()
        if client.server_capabilities.prompts is None:
            return []
        return await _pages(lambda cursor: client.list_prompts(cursor=cursor), "prompts")

    async def list_resources(self) -> list[types.Resource]:
        client = await self.client()
        if client.server_capabilities.resources is None:
            return []
        return await _pages(lambda cursor: client.list_resources(cursor=cursor), "resources")

    async def call_tool(self, tool: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        return await self.use(lambda client: client.call_tool(tool, arguments))

    async def use(self, request: Callable[[Client], Awaitable[T]]) -> T:
        """One request on the live session, its failures mapped: Unavailable (the session is then
        restarted on the next use), TooLarge, or the server's own MCPError."""
        client = await self.client()
        self.in_flight += 1
        self._idle.clear()
        try:
            return await request(client)
        except MCPError as exc:
            if _cut(exc):
                raise TooLarge(exc.error.message[:300]) from None
            if exc.error.code == types.CONNECTION_CLOSED:
                self.broken("the connection closed during a call")
                raise Unavailable(f"MCP server {self.name!r} went away during the call") from None
            raise
        except (httpx2.TransportError, OSError) as exc:
            self.broken(_describe(exc))
            raise Unavailable(f"MCP server {self.name!r} is unreachable: {_describe(exc)}") from None
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()
            self.last_used = time.monotonic()

    def idle_for(self, now: float) -> float:
        return 0.0 if self.in_flight else now - self.last_used

    async def stop(self) -> None:
        async with self._start_lock:
            await self._halt()

    async def retire(self, bound: float) -> None:
        """A config reload removed or replaced this server: no new calls start here; the calls in
        flight get `bound` seconds to end, then the session (a stdio process) is stopped."""
        self.retired = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(bound):
                await self._idle.wait()
        await self.stop()

    async def _halt(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        try:
            async with asyncio.timeout(10.0):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        except Exception:
            log.exception("mcp server %s: stopping failed", self.name)


@contextlib.asynccontextmanager
async def _owned(http: httpx2.AsyncClient, transport: Any) -> Any:
    """The HTTP client closed with the transport that uses it."""
    async with http, transport as streams:
        yield streams


async def _pages(fetch: Callable[[str | None], Awaitable[Any]], field: str) -> list[Any]:
    """Every item of a paginated list, at most MAX_TOOLS of them in at most MAX_TOOL_PAGES pages."""
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(MAX_TOOL_PAGES):
        page = await fetch(cursor)
        items += getattr(page, field)
        cursor = page.next_cursor
        if cursor is None or len(items) >= MAX_TOOLS:
            break
    return items[:MAX_TOOLS]


def _cut(exc: MCPError) -> bool:
    """The error for an answer cut while read: stdio.py's for a line over its limit, the SDK's for
    an HTTP answer bounded.py cut (a parse error with our marker), or for an
    event over max_sse_event_size (httpx2's SSEError, passed on as a closed connection)."""
    message = exc.error.message
    return ((exc.error.code == types.PARSE_ERROR and TOO_LARGE in message)
            or (exc.error.code == types.INTERNAL_ERROR and message.startswith(STDIO_TOO_LARGE))
            or (exc.error.code == types.CONNECTION_CLOSED and message.startswith("SSE stream failed")
                and "byte limit" in message))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions[:3])
    text = str(exc) or type(exc).__name__
    return text[:300]
