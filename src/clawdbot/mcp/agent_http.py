"""/v1/chat/completions with `X-Clawdbot-Tools`: the agent loop (mcp/agent.py) for a plain OpenAI
client. The answer is a normal chat.completion (or stream); the gateway's tool steps are in the
extension field `clawdbot_agent` (docs/mcp.md "The agent loop")."""

from __future__ import annotations

import re
import time
from typing import Any

import msgspec

from clawdbot.api.exchange import Exchange
from clawdbot.api.http import SSE
from clawdbot.api.relay import CHAT_PATH, completion_id, end_with_error, trace_headers
from clawdbot.codecs import openai as oa
from clawdbot.core.errors import BadRequest, GatewayError
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, Message
from clawdbot.mcp.agent import Agent, Done, Event, Text, ToolCalls, ToolResult
from clawdbot.tenancy.principal import ANONYMOUS

HEADER = "X-Clawdbot-Tools"
MAX_PATTERNS = 32
_PATTERN = re.compile(r"[A-Za-z0-9_.*?\[\]-]{1,200}")
_json = msgspec.json.Encoder().encode


def patterns(value: bytes) -> list[str] | None:
    """`mcp`: every tool the key may use (None); else a comma-separated list of globs over
    `server.tool` (`time`, `docs.search_*`), which narrow what the key may use, never widen it."""
    text = value.decode("latin-1").strip()
    if text == "mcp":
        return None
    found = [p.strip() for p in text.split(",") if p.strip()]
    if not found or len(found) > MAX_PATTERNS or not all(_PATTERN.fullmatch(p) for p in found):
        raise BadRequest(f"{HEADER}: `mcp`, or up to {MAX_PATTERNS} comma-separated globs over `server.tool`.",
                         param=HEADER, code="invalid_value")
    return found


class HttpAgent(Agent):
    """The loop as the pipeline holds it (Pipeline.agent): also the opt-in branch of api/chat.py."""

    async def chat_completions(self, ex: Exchange, req: ChatRequest, value: bytes) -> None:
        await chat_completions(self, ex, req, value)


async def chat_completions(agent: Agent, ex: Exchange, req: ChatRequest, value: bytes) -> None:
    """`ex.ctx` was authenticated and admitted as usual (api/app.py)."""
    select = patterns(value)
    if req.tools:
        raise BadRequest(f"`tools` and {HEADER} together are not supported yet: the gateway runs only MCP tools.",
                         param="tools", code="invalid_value")
    events = agent.run(req, ex.ctx, ex.ctx.identity or ANONYMOUS, select, "POST", CHAT_PATH)
    try:
        if req.stream:
            await _stream(ex, events, req)
        else:
            await _whole(ex, events, req)
    finally:
        await events.aclose()


def _extension(done: Done) -> dict[str, Any]:
    return done.summary()


async def _whole(ex: Exchange, events: Any, req: ChatRequest) -> None:
    done: Done | None = None
    async for ev in events:
        if isinstance(ev, Done):
            done = ev
    assert done is not None
    trace_headers(ex)
    resp = ChatResponse(completion_id(), done.model or req.model, int(time.time()),
                        Message("assistant", done.text), done.finish_reason, done.usage)
    out = msgspec.json.decode(oa.encode_chat_response(resp, req.model))
    out["clawdbot_agent"] = _extension(done)
    await ex.json(200, _json(out), [(b"x-clawdbot-agent-turns", str(done.turns).encode())])


async def _stream(ex: Exchange, events: Any, req: ChatRequest) -> None:
    """Text of every turn as content deltas; each step's calls and results as chunks with no
    choices and a `clawdbot_agent` field; then the finish reason, the usage (summed), [DONE]."""
    enc = oa.ChunkEncoder(completion_id(), req.model, int(time.time()), req.include_usage)
    try:
        async for ev in events:
            if not ex.started:
                trace_headers(ex)
                await ex.start(200, SSE, [(b"cache-control", b"no-cache")])
            await ex.write(_event(enc, ev))
    except GatewayError as exc:
        if not ex.started:
            raise
        await end_with_error(ex, exc)
        return
    ex.answered()
    await ex.end(enc.done())


def _event(enc: oa.ChunkEncoder, ev: Event) -> bytes:
    if isinstance(ev, Text):
        return enc.encode(ChatChunk(content=ev.content, reasoning=ev.reasoning))
    if isinstance(ev, ToolCalls | ToolResult):
        step = ev.view() if isinstance(ev, ToolCalls) else {"step": ev.step, "result": ev.view()}
        return b"data: " + _json({**enc.head, "choices": [], "clawdbot_agent": step}) + b"\n\n"
    out = enc.encode(ChatChunk(finish_reason=ev.finish_reason, usage=ev.usage))
    return out + b"data: " + _json({**enc.head, "choices": [], "clawdbot_agent": _extension(ev)}) + b"\n\n"
