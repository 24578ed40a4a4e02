"""One upstream MCP server: a client session started on first use, held open by a task of its own
(the SDK's sessions are entered and left in one task), restarted with backoff after a failure and
stopped when idle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from clawdbot.config.mcp_schema import McpServer
from clawdbot.mcp.stdio import Launch, launch_of, line_limit, stdio_transport

log = logging.getLogger("clawdbot.mcp")
MAX_TOOL_PAGES = 20  # tools/list pages read from one server (a paginator that never ends)
MAX_TOOLS = 1000  # tools kept of one server


class Unavailable(Exception):
    """The server cannot be reached now (does not start, crashed, restarting)."""


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
            http = httpx2.AsyncClient(headers=s.headers, timeout=httpx2.Timeout(s.timeout, connect=s.connect_timeout))
            transport = _owned(http, streamable_http_client(s.url, http_client=http))
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
        tools: list[types.Tool] = []
        cursor: str | None = None
        for _ in range(MAX_TOOL_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools += page.tools
            cursor = page.next_cursor
            if cursor is None or len(tools) >= MAX_TOOLS:
                break
        self.tools = tools[:MAX_TOOLS]
        return self.tools

    async def call_tool(self, tool: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        client = await self.client()
        self.in_flight += 1
        try:
            return await client.call_tool(tool, arguments)
        except MCPError as exc:
            if exc.error.code == types.CONNECTION_CLOSED:
                self.broken("the connection closed during a call")
                raise Unavailable(f"MCP server {self.name!r} went away during the call") from None
            raise
        except (httpx2.TransportError, OSError) as exc:
            self.broken(_describe(exc))
            raise Unavailable(f"MCP server {self.name!r} is unreachable: {_describe(exc)}") from None
        finally:
            self.in_flight -= 1
            self.last_used = time.monotonic()

    def idle_for(self, now: float) -> float:
        return 0.0 if self.in_flight else now - self.last_used

    async def stop(self) -> None:
        async with self._start_lock:
            await self._halt()

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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions[:3])
    text = str(exc) or type(exc).__name__
    return text[:300]
