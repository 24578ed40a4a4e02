"""Chat runs: one model answer streamed to a logical connection as `chat` events, through the same
pipeline as /v1/chat/completions (pipeline/policy.py: admit, plugins, the gateway, the end with
settle and the access log), then stored.

A run is a task owned by `Runs`, not by the socket that started it: it goes on when the socket
drops (the client may resume) and is stored however it ends (complete, aborted with the partial
text, error). One run per session at a time."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any, Protocol

from clawdbot.core import accounting
from clawdbot.core.context import RequestContext, new_request_id
from clawdbot.core.errors import GatewayError
from clawdbot.core.types import ChatChunk, ChatRequest
from clawdbot.observability.logging import request_id_var
from clawdbot.pipeline.plugins import replayed
from clawdbot.pipeline.policy import Pipeline
from clawdbot.state.base import ChatStore, SessionRecord
from clawdbot.tenancy.costs import estimate_prompt_tokens
from clawdbot.tenancy.principal import Principal
from clawdbot.web.connections import Connection
from clawdbot.web.views import message_view, session_view, trace_view, usage_view

log = logging.getLogger("clawdbot.chat")
STATES = {"complete": "final", "aborted": "aborted", "error": "error"}
ABORT_WAIT_S = 5.0  # how long chat.abort waits for the run to store its partial answer


def ws_code(exc: GatewayError) -> str:
    if exc.status == 400:
        return "bad_params"
    if exc.status == 401:
        return "unauthorized"
    if exc.status == 403:
        return "forbidden"
    if exc.status == 404:
        return "not_found"
    if exc.status == 429:
        return "rate_limited"
    if exc.status >= 500 or exc.type in ("upstream_error", "timeout", "service_unavailable"):
        return "upstream_error"
    return "internal"


class ChatRun:
    def __init__(
        self, pipeline: Pipeline, store: ChatStore, conn: Connection, session: SessionRecord, model: str,
        req: ChatRequest, identity: Principal, run_id: str | None = None, tools: bool = False,
    ) -> None:
        self.id = run_id or "run_" + os.urandom(8).hex()
        self.pipeline = pipeline
        self.gateway = pipeline.gateway
        self.identity = identity
        self.store = store
        self.conn = conn
        self.user = conn.principal.user
        self.session = session
        self.session_id = session.id
        self.model = model
        self.req = req
        self.ctx = ctx = RequestContext(new_request_id(), model=model, stream=True, principal=conn.principal.user)
        if identity.key_id is not None:  # as on /v1: the key is the principal, its tags and priority route
            ctx.principal, ctx.identity = identity.name, identity
            ctx.tag = identity.tags[0] if identity.tags else None
            prio = identity.metadata.get("priority")
            ctx.priority = str(prio)[:64] if prio is not None else None
        if pipeline.tracer is not None:  # a root span: the run's trace starts here
            ctx.trace = pipeline.tracer.start(ctx, "chat.send", None)
        self.task: asyncio.Task[None] | None = None
        self.aborting = False
        self.ending = False  # storing its answer: a cancel now would lose it
        self.on_end: Callable[[], None] = lambda: None  # frees the session; set by Runs.start
        self.tools = tools  # the MCP tool loop runs the model's tool calls (pipeline.agent, mcp/agent.py)
        self.agent: dict[str, Any] | None = None  # what the loop did: the final event's trace.agent
        self.usage: dict[str, int] | None = None  # every turn's tokens, summed (the loop's)

    async def run(self) -> None:
        request_id_var.set(self.ctx.request_id)  # this task's own context: provider logs carry it
        # after chat.send's reply: the session as the run changed it (a new one, its title, model)
        self.conn.emit("session", {"session": session_view(self.session)})
        metrics = self.gateway.metrics
        metrics.chats_in_flight += 1
        parts: list[str] = []
        outcome, error = "complete", None
        try:
            await self._stream(parts)
        except asyncio.CancelledError:
            # chat.abort, or shutdown: either way the partial answer is kept
            outcome = "aborted"
            self.ctx.error = "aborted" if self.aborting else "gateway shutting down"
            self.ctx.cancelled = True
        except GatewayError as exc:
            outcome, error = "error", exc
            self.ctx.error = exc.message
        except Exception as exc:
            log.exception("chat run %s failed", self.id)
            outcome, error = "error", GatewayError(f"internal error (request id {self.ctx.request_id})")
            self.ctx.error = type(exc).__name__
        finally:
            metrics.chats_in_flight -= 1
        try:
            await self._end(outcome, "".join(parts), error)
        finally:  # this frame is in the error's traceback: holding the error would make a cycle
            error = None

    async def end_unstarted(self) -> None:
        self.ctx.error, self.ctx.cancelled = "aborted", True
        await self._end("aborted", "", None)

    async def _stream(self, parts: list[str]) -> None:
        ctx, pl, req = self.ctx, self.pipeline, self.req
        if pl.meters(self.identity):  # the first stage, as on /v1: allowed models, limits, budgets
            await pl.admit(ctx, self.identity, self.model, lambda: _estimate(req), None)
        if self.tools:
            return await self._agent(parts)
        run = pl.plugins(ctx, self.model)
        if run is None:
            return await self._relay(await self.gateway.open_stream(req, ctx), parts)
        try:
            changed, answer = await run.pre(req)
            if answer is not None:
                ctx.cost_free = answer.cost_free
                return await self._relay(run.stream(replayed(answer.response)), parts)
            stream = await self.gateway.open_stream(changed, ctx)
            await self._relay(run.stream(stream) if run.reads_answer else stream, parts)
        except GatewayError as exc:
            await pl.failed(run, exc)
            raise

    async def _relay(self, stream: AsyncGenerator[ChatChunk, None], parts: list[str]) -> None:
        ctx, base = self.ctx, {"runId": self.id, "sessionId": self.session_id, "state": "delta"}
        try:
            async for chunk in stream:
                if not accounting.chunk(ctx, chunk):
                    break  # over what the key's budget reserved: the answer ends here
                if chunk.reasoning:
                    self.conn.emit("chat", {**base, "reasoning": chunk.reasoning})
                if chunk.content:
                    parts.append(chunk.content)
                    self.conn.emit("chat", {**base, "delta": chunk.content})
        finally:
            await stream.aclose()
            accounting.unreported(ctx, lambda: _estimate(self.req))

    async def _agent(self, parts: list[str]) -> None:
        """The model with the MCP tools: every turn's text as deltas, each tool call and result as
        `tool_call` / `tool_result` events (docs/websocket.md "Tools"). The answer is the last turn's."""
        base = {"runId": self.id, "sessionId": self.session_id}
        events = self.pipeline.agent.run(self.req, self.ctx, self.identity, None, "WS", "chat.send")
        try:
            async for ev in events:
                if ev.kind == "text":
                    if ev.reasoning:
                        self.conn.emit("chat", {**base, "state": "delta", "reasoning": ev.reasoning})
                    if ev.content:
                        parts.append(ev.content)
                        self.conn.emit("chat", {**base, "state": "delta", "delta": ev.content})
                elif ev.kind == "done":
                    parts[:] = [ev.text]
                    self.agent = ev.summary()
                    u = ev.usage
                    self.usage = {"promptTokens": u.prompt_tokens, "completionTokens": u.completion_tokens}
                else:
                    if ev.kind == "tool_call":
                        parts.clear()  # text before a tool call is not the answer
                    self.conn.emit("chat", {**base, "state": ev.kind, **ev.view()})
        finally:
            await events.aclose()

    async def _end(self, outcome: str, text: str, error: GatewayError | None) -> None:
        self.ending = True
        ctx = self.ctx
        # settle (spend, limits), the service's books, the access log: as for /v1
        status = 200 if outcome == "complete" else 499 if outcome == "aborted" else (error.status if error else 500)
        try:
            await self.pipeline.end(ctx, "WS", "chat.send", status)
        except Exception:
            log.exception("ending run %s failed", self.id)
        err = {"code": ws_code(error), "message": error.message} if error is not None else None
        trace, usage = trace_view(ctx, outcome, err), self.usage or usage_view(ctx)
        if self.agent is not None:
            trace["agent"] = self.agent
        message: dict[str, Any]
        session: SessionRecord | None = None  # as storing the answer left it: the session event after it
        try:
            rec, session = await self.store.add_message(self.user, self.session_id, "assistant", text, self.model,
                                                        outcome, usage, trace)
            message = message_view(rec)
            message.pop("usage", None)  # both are beside it in the event already
            message.pop("trace", None)
        except KeyError:  # the session was deleted while it answered
            message = {"id": None, "role": "assistant", "content": text, "model": self.model, "status": outcome}
        except Exception:
            log.exception("could not store the answer of run %s", self.id)
            message = {"id": None, "role": "assistant", "content": text, "model": self.model, "status": outcome}
        payload: dict[str, Any] = {"runId": self.id, "sessionId": self.session_id, "state": STATES[outcome],
                                   "message": message, "trace": trace}
        if usage is not None:
            payload["usage"] = usage
        if err is not None:
            payload["error"] = err
        # Free the session before the client hears the run ended: its next message must not be busy.
        self.on_end()
        self.conn.emit("chat", payload)
        self._log(outcome)
        if session is not None:  # None: deleted meanwhile, or the answer could not be stored
            self.conn.emit("session", {"session": session_view(session)})

    def _log(self, outcome: str) -> None:
        """The business line of a chat turn (the proxy layer logs the technical one). Never content."""
        ctx, ttft = self.ctx, self.ctx.ttft_ms()
        fields: dict[str, object] = {
            "user": self.user, "session": self.session_id, "run": self.id, "model": self.model,
            "service": ctx.service, "upstream_model": ctx.upstream_model,
            "prompt_tokens": ctx.prompt_tokens, "completion_tokens": ctx.completion_tokens,
            "ttft_ms": round(ttft, 1) if ttft is not None else None, "latency_ms": round(ctx.elapsed_ms(), 1),
            "outcome": outcome, "error": ctx.error if outcome == "error" else None,
        }
        text = " ".join(f"{k}={_kv(v)}" for k, v in fields.items() if v is not None)
        log.info("chat %s", text, extra={"request_id": ctx.request_id})


def _estimate(req: ChatRequest) -> int:
    return estimate_prompt_tokens([{"role": m.role, "content": m.text()} for m in req.messages])


def _kv(v: object) -> str:
    s = str(v)
    return f'"{s}"' if not s or any(c in s for c in ' "=') else s


class SharedRuns(Protocol):
    """The runs of every worker sharing a Redis (web/runs_redis.py RedisRuns, which builds on this
    module: hence a protocol here, not an import)."""

    local: Runs | None

    async def claim(self, session_id: str, run_id: str, user: str, conn_id: str) -> bool: ...

    def release(self, session_id: str, run_id: str) -> None: ...

    def ended(self, run: ChatRun) -> None: ...

    async def running(self, session_id: str) -> str | None: ...

    async def abort(self, run_id: str, user: str, caller: Connection | None) -> bool: ...


class Runs:
    """The runs in flight, by id and by session (one per session). With `shared` (redis_url:
    web/runs_redis.py) also across the workers sharing that Redis: claims, `running`, aborts."""

    def __init__(self, shared: SharedRuns | None = None) -> None:
        self._runs: dict[str, ChatRun] = {}
        self._sessions: dict[str, str | None] = {}  # claimed sessions -> their run's id once started
        self._tasks: set[asyncio.Task[None]] = set()  # until done, also after the run has ended
        self.shared = shared
        if shared is not None:
            shared.local = self

    def claim(self, session_id: str) -> bool:
        """Reserve the session for a run before the first await, so two sends cannot both pass."""
        if session_id in self._sessions:
            return False
        self._sessions[session_id] = None
        return True

    async def claim_shared(self, session_id: str, run_id: str, user: str, conn_id: str) -> bool:
        """After claim(): the session across workers (always True without Redis)."""
        return self.shared is None or await self.shared.claim(session_id, run_id, user, conn_id)

    def release(self, session_id: str, run_id: str | None = None) -> None:
        self._sessions.pop(session_id, None)
        if run_id is not None and self.shared is not None:
            self.shared.release(session_id, run_id)

    def session_run(self, session_id: str) -> str | None:
        return self._sessions.get(session_id)

    async def running(self, session_id: str) -> str | None:
        """The session's run in flight, on this worker or (with Redis) another."""
        local = self._sessions.get(session_id)
        if local is not None or self.shared is None:
            return local
        return await self.shared.running(session_id)

    def in_flight(self) -> list[ChatRun]:
        return list(self._runs.values())

    def start(self, run: ChatRun) -> None:
        self._runs[run.id] = run
        self._sessions[run.session_id] = run.id
        run.on_end = lambda: self._done(run)
        self._track(run, run.run())

    def _track(self, run: ChatRun, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=run.id)
        run.task = task
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._finished(run, t))

    def _finished(self, run: ChatRun, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled() and not run.ending:
            # Cancelled before its first step, so run() never saw it: end it the usual way.
            self._track(run, run.end_unstarted())
            return
        # the run held its task and a callback that holds the run: cycles, broken now it is over
        run.task, run.on_end = None, _nothing
        self._done(run)

    def _done(self, run: ChatRun) -> None:
        if self._runs.get(run.id) is run:
            del self._runs[run.id]
            self.release(run.session_id, run.id)
            if self.shared is not None:
                self.shared.ended(run)

    def get(self, run_id: str, user: str) -> ChatRun | None:
        run = self._runs.get(run_id)
        return run if run is not None and run.user == user else None

    async def abort(self, run_id: str, user: str, caller: Connection | None = None) -> bool:
        """Cancel the run (and so its upstream call); waits briefly so its `aborted` event (with
        the partial answer) comes before the reply to chat.abort. A run this worker does not hold
        is asked of the others (with Redis)."""
        run = self.get(run_id, user)
        if run is None and self.shared is not None and run_id not in self._runs:
            return await self.shared.abort(run_id, user, caller)
        if run is None or run.task is None or run.task.done() or run.aborting or run.ending:
            return False
        run.aborting = True
        # A moved connection's socket gets the event from Redis (web/follow_redis.py): wait for it there.
        seen = run.conn.end_seen(run.id)
        run.task.cancel()
        await asyncio.wait([run.task], timeout=ABORT_WAIT_S)
        if seen is not None:
            await asyncio.wait([seen], timeout=ABORT_WAIT_S)
            run.conn.end_forgotten(run.id)
        return True

    def __len__(self) -> int:
        return len(self._runs)

    async def close(self) -> None:
        """Shutdown: every run is cancelled, stores what it has, and is awaited."""
        for r in list(self._runs.values()):
            if r.task is not None and not r.ending:
                r.task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10.0)


def _nothing() -> None:
    return None
