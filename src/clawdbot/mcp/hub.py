"""The aggregate of the configured MCP servers as one caller sees it: their tools under
`server.tool`, filtered by the caller's grant, and each call admitted (rate), bounded (time,
size), recorded (calls.py) and answered with a clean error when the server fails."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import mcp_types as types
from mcp.shared.exceptions import MCPError

from clawdbot.config.mcp_schema import Mcp
from clawdbot.mcp import calls
from clawdbot.mcp.access import Access, Grant
from clawdbot.mcp.limits import CallLimits, Unreachable
from clawdbot.mcp.record import CallRecords, Done
from clawdbot.mcp.upstream import TooLarge, Unavailable, Upstream
from clawdbot.tenancy.limits import Limiter, MemoryLimiter
from clawdbot.tenancy.principal import Principal

log = logging.getLogger("clawdbot.mcp")
REAP_INTERVAL = 5.0  # seconds between looks for idle stdio servers
RETIRE_GRACE = 5.0  # seconds past a replaced server's call timeout before its calls in flight are cut


class Caller(NamedTuple):
    principal: Principal
    request_id: str
    # the call's id in the request log: in the agent loop `<turn's id>-tool-<n>` (agent.py); None on
    # /mcp, where the call is the HTTP request and has its id (the access log's is always request_id)
    record_as: str | None = None


class UnknownTool(Exception):
    """No such tool, or one the caller may not see: the two answers are the same."""


class RateLimited(Exception):
    """Over the key's calls per minute, or (fail closed) the count cannot be read now."""

    def __init__(self, text: str, retry_after: int) -> None:
        super().__init__(f"rate_limited: {text}; retry in {retry_after} s")
        self.retry_after = retry_after


def error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


class Hub:
    def __init__(self, config: Mcp, env: Mapping[str, str], log_json: bool,
                 sink: Callable[[str], None] | None = None, limiter: Limiter | None = None) -> None:
        self.env = env
        self.upstreams = {s.name: Upstream(s, env) for s in config.servers}
        self.access = Access(config)
        self._retiring: dict[asyncio.Task[None], Upstream] = {}  # removed or replaced by a reload, stopping
        # the pipeline's limiter (Redis with `redis_url`: shared by every replica), else one of its own
        self.limits = CallLimits(limiter if limiter is not None else MemoryLimiter())
        self.calls = calls.CallLog(log_json, sink)
        self.records: CallRecords | None = None  # the request log's (build.py), when there is one
        self._reaper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._reaper = asyncio.get_running_loop().create_task(self._reap_idle(), name="mcp-reaper")

    async def close(self) -> None:
        if self.records is not None:
            await self.records.close()
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        retiring = list(self._retiring.items())
        for task, _u in retiring:
            task.cancel()  # shutting down: their calls in flight are cancelled as well
        await asyncio.gather(*(t for t, _u in retiring), return_exceptions=True)
        stopping = [*self.upstreams.values(), *(u for _t, u in retiring)]
        await asyncio.gather(*(u.stop() for u in stopping), return_exceptions=True)

    def apply(self, config: Mcp) -> dict[str, list[str]]:
        """A reloaded `mcp:` section, applied at once: the access rules; servers whose settings did
        not change keep their session (a stdio process keeps running); new ones start on first
        use; removed and changed ones get no new calls and are stopped once their calls in flight
        have ended (or after their call timeout and RETIRE_GRACE)."""
        old = self.upstreams
        new: dict[str, Upstream] = {}
        for s in config.servers:
            u = old.get(s.name)
            new[s.name] = u if u is not None and u.server == s else Upstream(s, self.env)
        gone = [u for name, u in old.items() if new.get(name) is not u]
        self.upstreams, self.access = new, Access(config)
        loop = asyncio.get_running_loop()
        for u in gone:
            u.retired = True  # at once: a caller that looked it up before the swap cannot start it again
            task = loop.create_task(u.retire(u.server.timeout + RETIRE_GRACE), name=f"mcp-retire-{u.name}")
            self._retiring[task] = u
            task.add_done_callback(self._retired)
        changes = {"added": sorted(set(new) - set(old)), "removed": sorted(set(old) - set(new)),
                   "replaced": sorted(u.name for u in gone if u.name in new)}
        if any(changes.values()):
            log.info("mcp servers reloaded: added %s, removed %s, replaced %s", *(
                ", ".join(v) or "none" for v in changes.values()))
        return changes

    def _retired(self, task: asyncio.Task[None]) -> None:
        u = self._retiring.pop(task, None)
        if u is not None and not task.cancelled() and task.exception() is not None:
            log.error("mcp server %s: stopping it after a reload failed: %s", u.name, task.exception())

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(REAP_INTERVAL)
            now = time.monotonic()
            for u in self.upstreams.values():
                idle = u.server.idle_timeout
                if u.launch is not None and u.running and idle is not None and u.idle_for(now) > idle:
                    log.info("mcp server %s idle for %.0f s: stopping it", u.name, idle)
                    await u.stop()

    def done(self, caller: Caller, server: str, name: str, status: str, started: float, size: int | None,
             event: str = calls.CALL, arguments: Any = None, result: Any = None) -> None:
        """A call ended: its access-log line and metrics (calls.py), its request-log record
        (record.py; `arguments` and `result` only kept when the caller's key logs bodies)."""
        p = caller.principal
        self.calls.record(caller.request_id, p.name, server, name, status, started, size, event, p.key_id, p.team_id)
        r = self.records
        if r is None or not r.on:
            return
        bodies = r.wants_bodies(caller.principal)
        answered = bodies and status in (calls.OK, calls.TOOL_ERROR)  # not a result refused as too large
        r.add(Done(caller.record_as or caller.request_id, caller.principal, event, server, name, status,
                   time.perf_counter() - started, size, arguments if bodies else None, result if answered else None))

    async def list_tools(self, caller: Caller) -> list[types.Tool]:
        grant = self.access.grant(caller.principal)
        visible = [u for u in self.upstreams.values() if grant.server(u.name)]
        listed = await asyncio.gather(*(self._tools_of(u, grant) for u in visible))
        return [t for tools in listed for t in tools]

    async def _tools_of(self, u: Upstream, grant: Grant) -> list[types.Tool]:
        try:
            async with asyncio.timeout(u.server.connect_timeout + u.server.timeout):
                tools = await u.list_tools()
        except (Unavailable, MCPError, TimeoutError, OSError) as exc:
            log.warning("mcp server %s: tools/list failed (%s); its tools are left out", u.name, exc)
            return []
        return [t.model_copy(update={"name": f"{u.name}.{t.name}"}) for t in tools if grant.tool(u.name, t.name)]

    async def call_tool(self, caller: Caller, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        started = time.perf_counter()
        p = caller.principal
        server, dot, tool = name.partition(".")
        u = self.upstreams.get(server) if dot else None
        grant = self.access.grant(p)
        if u is None or not grant.tool(server, tool) or not await self._exists(u, tool):
            self.done(caller, "", "", calls.UNKNOWN, started, None)
            raise UnknownTool(name)
        await self.admit(caller, grant, server, tool, started)
        limit = min(u.server.max_result_bytes, grant.max_result_bytes or u.server.max_result_bytes)
        status, size = calls.FAILED, None
        result: types.CallToolResult | None = None
        try:
            result, status, size = await self._call(u, tool, arguments, limit)
            return result
        except asyncio.CancelledError:
            status = calls.CANCELLED  # the client went away: the SDK cancels the upstream request
            raise
        finally:
            self.done(caller, server, tool, status, started, size, calls.CALL, arguments, result)

    async def admit(self, caller: Caller, grant: Grant, server: str, name: str, started: float,
                    event: str = calls.CALL) -> None:
        """Count the call against the key's calls per minute (every kind of call: tools, prompts,
        resource reads); raises RateLimited, also when the count cannot be read (fail closed)."""
        if grant.calls_per_minute is None:
            return
        key = caller.principal.name
        try:
            wait = await self.limits.admit(key, grant.calls_per_minute)
        except Unreachable:
            self.done(caller, server, name, calls.UNAVAILABLE, started, None, event)
            raise RateLimited("unavailable: MCP calls per minute cannot be counted right now", 1) from None
        if wait:
            self.done(caller, server, name, calls.RATE_LIMITED, started, None, event)
            raise RateLimited(f"{grant.calls_per_minute} MCP tool calls per minute", wait)

    async def _exists(self, u: Upstream, tool: str) -> bool:
        """Is `tool` in the server's list? A server that cannot list now is given the benefit of
        the doubt: the call itself then says what is wrong."""
        try:
            async with asyncio.timeout(u.server.connect_timeout + u.server.timeout):
                return any(t.name == tool for t in await u.list_tools())
        except (Unavailable, MCPError, TimeoutError, OSError):
            return True

    async def _call(self, u: Upstream, tool: str, arguments: dict[str, Any] | None,
                    limit: int) -> tuple[types.CallToolResult, str, int | None]:
        s = u.server
        try:
            async with asyncio.timeout(s.timeout):
                result = await u.call_tool(tool, arguments)
        except TimeoutError:
            return error_result(f"timeout: the tool did not answer within {s.timeout} s"), calls.TIMEOUT, None
        except Unavailable as exc:
            return error_result(f"unavailable: {exc}"), calls.UNAVAILABLE, None
        except TooLarge:  # cut while it was read: its whole size is not known
            return error_result(f"result_too_large: the result exceeds {limit} bytes"), calls.TOO_LARGE, None
        except MCPError as exc:
            return error_result(f"error from MCP server {u.name!r}: {exc.error.message[:500]}"), calls.FAILED, None
        u.succeeded()
        size = len(result.model_dump_json(by_alias=True, exclude_none=True))
        if size > limit:
            text = f"result_too_large: the result is {size} bytes; the limit is {limit}"
            return error_result(text), calls.TOO_LARGE, size
        return result, calls.TOOL_ERROR if result.is_error else calls.OK, size
