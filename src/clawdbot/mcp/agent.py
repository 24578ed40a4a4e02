"""The agent loop: the gateway offers a model the MCP tools its caller may use, runs the calls the
model asks for through the hub (the same access rules, limits, access-log line and metrics as a
call on /mcp) and asks again with the results, until the model answers without tools or a limit
ends it (docs/mcp.md "The agent loop").

Every model turn is a request through the pipeline: the first is the caller's own (already
admitted), each later one a context of its own that is admitted, sent through the plugins and the
gateway, and ended (settled, logged) like any other. The loop yields events; the chat page
(web/runs.py) and /v1/chat/completions (mcp/agent_http.py) show them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import AsyncGenerator
from fnmatch import fnmatchcase
from typing import Any

import mcp_types as types
import msgspec

from clawdbot.config.mcp_schema import McpAgent
from clawdbot.core import accounting
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import GatewayError
from clawdbot.core.types import ChatChunk, ChatRequest, Message, Tool, ToolCall, Usage
from clawdbot.mcp import calls as call_log
from clawdbot.mcp.hub import Caller, Hub, RateLimited, UnknownTool
from clawdbot.pipeline.plugins import replayed
from clawdbot.pipeline.policy import Pipeline
from clawdbot.tenancy.costs import estimate_prompt_tokens
from clawdbot.tenancy.principal import Principal

MAX_NAME = 64  # OpenAI's function names: ^[a-zA-Z0-9_-]{1,64}$
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]")
MAX_DESCRIPTION = 4096  # characters of a tool's description sent to the model
MAX_ARGUMENTS = 256 * 1024  # characters of one call's arguments the loop collects from a stream
SHOWN = 2000  # characters of a tool result the events show (the model gets all of it)
ASKED_NAME = 100  # characters of a name the model made up, as the events show it


def function_name(mcp_name: str, taken: dict[str, str]) -> str:
    """`server.tool` as an OpenAI function name: `server__tool`, other characters as `_`; a name
    too long or already taken is cut to 55 characters plus `_` and 8 hex digits of its hash."""
    base = _NOT_NAME.sub("_", mcp_name.replace(".", "__", 1))
    if len(base) <= MAX_NAME and base not in taken:
        return base
    return base[:55] + "_" + hashlib.sha256(mcp_name.encode()).hexdigest()[:8]


def selected(name: str, patterns: list[str] | None) -> bool:
    if patterns is None:
        return True
    return any(fnmatchcase(name, p if "." in p else p + ".*") for p in patterns)


class Offer(msgspec.Struct):
    tools: list[Tool]
    names: dict[str, str]  # function name -> `server.tool`: the way back, for this request only


class ToolCalls(msgspec.Struct):
    """The model asked for these tools (step n)."""

    step: int
    calls: list[dict[str, str]]  # {id, name (`server.tool`, or what the model asked for), arguments}
    kind: str = "tool_call"

    def view(self) -> dict[str, Any]:
        return {"step": self.step, "calls": self.calls}


class ToolResult(msgspec.Struct):
    step: int
    id: str
    name: str
    status: str  # ok | error | unknown_tool | rate_limited | invalid_arguments | skipped
    content: str  # what the model gets
    ms: float
    kind: str = "tool_result"

    def view(self) -> dict[str, Any]:
        return {"step": self.step, "id": self.id, "name": self.name, "status": self.status,
                "content": self.content[:SHOWN], "ms": self.ms}


class Text(msgspec.Struct):
    content: str | None
    reasoning: str | None
    kind: str = "text"


class Done(msgspec.Struct):
    text: str  # the last turn's text: the answer
    finish_reason: str
    usage: Usage  # summed over every turn
    turns: int
    stopped: str | None  # max_steps | max_seconds: the last turn was asked to answer without tools
    steps: list[dict[str, Any]]
    model: str | None = None
    kind: str = "done"

    def summary(self) -> dict[str, Any]:
        return {"turns": self.turns, "stopped": self.stopped, "steps": self.steps}


Event = Text | ToolCalls | ToolResult | Done


class _Turn:
    """One model turn's stream, collected: its text and its tool calls (by index)."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, list[str]] = {}  # index -> [id, name, arguments]
        self.finish: str | None = None
        self.model: str | None = None

    def add(self, c: ChatChunk) -> None:
        if c.content:
            self.text.append(c.content)
        if c.finish_reason:
            self.finish = c.finish_reason
        if c.model and self.model is None:
            self.model = c.model
        for d in c.tool_calls or ():
            call = self.calls.setdefault(d.index, ["", "", ""])
            if d.id:
                call[0] = d.id
            if d.name:
                call[1] += d.name
            if d.arguments and len(call[2]) < MAX_ARGUMENTS:
                call[2] += d.arguments

    def tool_calls(self) -> list[ToolCall]:
        return [ToolCall(c[0] or f"call_{i}", c[1], c[2]) for i, c in sorted(self.calls.items())]


class Agent:
    def __init__(self, hub: Hub, pipeline: Pipeline, settings: McpAgent) -> None:
        self.hub = hub
        self.pipeline = pipeline
        self.settings = settings

    async def offer(self, caller: Caller, patterns: list[str] | None) -> Offer:
        """The tools the caller may use (hidden ones never), narrowed by `patterns`, as OpenAI tools."""
        listed = sorted((t for t in await self.hub.list_tools(caller) if selected(t.name, patterns)),
                        key=lambda t: t.name)
        names: dict[str, str] = {}
        tools = []
        for t in listed[: self.settings.max_tools]:
            fn = function_name(t.name, names)
            names[fn] = t.name
            tools.append(Tool(fn, (t.description or "")[:MAX_DESCRIPTION] or None, t.input_schema or None))
        return Offer(tools, names)

    async def run(self, req: ChatRequest, ctx: RequestContext, identity: Principal, patterns: list[str] | None,
                  method: str, path: str) -> AsyncGenerator[Event, None]:
        """The loop for `identity` (who pays, whose tools). `ctx` is the first turn's context,
        admitted by the caller and ended by it."""
        s = self.settings
        offer = await self.offer(Caller(identity, ctx.request_id), patterns)
        deadline = _Deadline(time.monotonic() + s.max_seconds)
        history = list(req.messages)
        usage = Usage()
        steps: list[dict[str, Any]] = []
        for step in range(1, s.max_steps + 1):
            stopped = "max_steps" if step == s.max_steps else "max_seconds" if deadline.passed() else None
            turn_req = msgspec.structs.replace(
                req, messages=list(history), stream=True, include_usage=True,
                tools=offer.tools or None, tool_choice=("none" if stopped else "auto") if offer.tools else None)
            turn = _Turn()
            turn_ctx = ctx if step == 1 else self._sub(ctx, step, path)
            async for piece in self._turn(turn_req, turn_ctx, identity, step > 1, turn, method, path):
                yield piece
            usage.prompt_tokens += turn_ctx.prompt_tokens or 0
            usage.completion_tokens += turn_ctx.completion_tokens or 0
            asked = turn.tool_calls()
            if not asked or stopped or turn.finish == "length":  # a turn cut short: its calls may be too
                finish = "length" if asked else turn.finish or "stop"
                yield Done("".join(turn.text), finish, usage, step, stopped, steps, turn.model)
                return
            yield ToolCalls(step, [{"id": c.id, "name": offer.names.get(c.name, c.name[:ASKED_NAME]),
                                    "arguments": c.arguments} for c in asked])
            history.append(Message("assistant", "".join(turn.text) or None, tool_calls=asked))
            results = await self._call_all(Caller(identity, turn_ctx.request_id), offer, asked, step, deadline)
            for r in results:
                yield r
                history.append(Message("tool", r.content, tool_call_id=r.id))
            steps.append({"step": step, "calls": [r.view() for r in results]})

    def _sub(self, first: RequestContext, step: int, path: str) -> RequestContext:
        """A later turn's own context: the same caller, key, routing inputs and client headers."""
        sub = RequestContext(f"{first.request_id[:100]}-{step}", model=first.model, stream=True,
                             principal=first.principal, identity=first.identity, priority=first.priority,
                             tag=first.tag, headers=first.headers)
        tracer = self.pipeline.tracer
        if tracer is not None:
            sub.trace = tracer.start(sub, path, None)
        return sub

    async def _turn(self, req: ChatRequest, ctx: RequestContext, identity: Principal, own: bool, turn: _Turn,
                    method: str, path: str) -> AsyncGenerator[Text, None]:
        """One model turn through the pipeline, streamed; `own`: this loop admits and ends `ctx`."""
        pl = self.pipeline
        status = 499
        try:
            if own:
                if pl.meters(identity):
                    await pl.admit(ctx, identity, req.model, lambda: _estimate(req), req.max_tokens)
                if req.max_tokens is not None:
                    ctx.completion_cap = req.max_tokens
            async for piece in self._stream(req, ctx, turn):
                yield piece
            status = 200
        except GatewayError as exc:
            status = exc.status
            ctx.error, ctx.error_code = exc.message, exc.code
            raise
        finally:
            if own:
                await pl.end(ctx, method, path, status)

    async def _stream(self, req: ChatRequest, ctx: RequestContext, turn: _Turn) -> AsyncGenerator[Text, None]:
        pl, gw = self.pipeline, self.pipeline.gateway
        run = pl.plugins(ctx, req.model)
        stream: AsyncGenerator[ChatChunk, None]
        try:
            if run is None:
                stream = await gw.open_stream(req, ctx)
            else:
                changed, answer = await run.pre(req)
                if answer is not None:
                    ctx.cost_free = answer.cost_free
                    stream = run.stream(replayed(answer.response))
                else:
                    opened = await gw.open_stream(changed, ctx)
                    stream = run.stream(opened) if run.reads_answer else opened
            try:
                async for chunk in stream:
                    if not accounting.chunk(ctx, chunk):
                        turn.finish = "length"
                        break  # over what the key's budget reserved: the turn ends here
                    turn.add(chunk)
                    if chunk.content or chunk.reasoning:
                        yield Text(chunk.content, chunk.reasoning)
            finally:
                await stream.aclose()
                accounting.unreported(ctx, lambda: _estimate(req))
        except GatewayError as exc:
            await pl.failed(run, exc)
            raise

    async def _call_all(self, caller: Caller, offer: Offer, asked: list[ToolCall], step: int,
                        deadline: _Deadline) -> list[ToolResult]:
        s = self.settings
        gate = asyncio.Semaphore(s.max_parallel_calls)
        # each call's request-log record: `<turn's id>-tool-<its place among the turn's calls>`
        runs = [self._call(caller._replace(record_as=f"{caller.request_id}-tool-{n}"), offer, c, step, gate, deadline)
                for n, c in enumerate(asked[: s.max_calls_per_step], 1)]
        results = list(await asyncio.gather(*runs))
        for c in asked[s.max_calls_per_step:]:
            results.append(ToolResult(step, c.id, offer.names.get(c.name, c.name[:ASKED_NAME]), "skipped",
                                      f"skipped: at most {s.max_calls_per_step} tool calls run in one turn", 0.0))
        return results

    async def _call(self, caller: Caller, offer: Offer, call: ToolCall, step: int, gate: asyncio.Semaphore,
                    deadline: _Deadline) -> ToolResult:
        started = time.perf_counter()
        name = offer.names.get(call.name)

        def result(status: str, content: str) -> ToolResult:
            ms = round((time.perf_counter() - started) * 1000, 1)
            return ToolResult(step, call.id, name or call.name[:ASKED_NAME], status, content, ms)

        if name is None:  # hidden, narrowed away or made up: the same answer, as on /mcp
            self.hub.done(caller, "", "", call_log.UNKNOWN, started, None)
            return result("unknown_tool", f"unknown_tool: no tool named {call.name[:ASKED_NAME]!r} is available")
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            return result("invalid_arguments", "invalid_arguments: the arguments must be a JSON object")
        try:
            async with gate, asyncio.timeout_at(deadline.on_loop()):
                answer = await self.hub.call_tool(caller, name, arguments)
        except UnknownTool:
            return result("unknown_tool", f"unknown_tool: no tool named {name!r} is available")
        except RateLimited as exc:
            return result("rate_limited", str(exc))
        except TimeoutError:
            deadline.hit = True
            return result("error", "timeout: the agent's time limit (mcp.agent.max_seconds) ran out")
        return result("error" if answer.is_error else "ok", result_text(answer))


class _Deadline:
    """The loop's time limit (a time.monotonic() instant). `hit` once a tool call ran into it: the
    event loop's timer may fire a hair before the monotonic clock reaches the instant (its own clock
    is read apart from ours, and uvloop's is cached per iteration), and a call cut short by the limit
    must end the loop all the same."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.hit = False

    def passed(self) -> bool:
        return self.hit or time.monotonic() >= self.at

    def on_loop(self) -> float:
        """The instant on the event loop's clock."""
        return asyncio.get_running_loop().time() + max(0.0, self.at - time.monotonic())


def result_text(r: types.CallToolResult) -> str:
    parts = [c.text if isinstance(c, types.TextContent) else c.model_dump_json(by_alias=True, exclude_none=True)
             for c in r.content]
    if not parts and r.structured_content is not None:
        parts.append(json.dumps(r.structured_content, ensure_ascii=False))
    return "\n".join(parts)


def _estimate(req: ChatRequest) -> int:
    return estimate_prompt_tokens([{"role": m.role, "content": m.text()} for m in req.messages])
