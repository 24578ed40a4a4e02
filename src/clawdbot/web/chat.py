"""chat.send and chat.abort: checks, the user's message, the history sent to the model, the run."""

from __future__ import annotations

import os
import time
from typing import Any

from clawdbot.core.errors import GatewayError, Unauthorized
from clawdbot.core.types import ChatRequest, Message
from clawdbot.state.base import MessageRecord, SessionRecord
from clawdbot.tenancy.principal import ANONYMOUS, MASTER, Principal
from clawdbot.web.frames import WsError
from clawdbot.web.methods import Caller, P, check_model, room_for_session
from clawdbot.web.ratelimit import take
from clawdbot.web.runs import ChatRun

TITLE_CHARS = 60


class SendParams(P):
    text: str = ""
    session_id: str | None = None
    model: str | None = None
    regenerate: bool = False
    tools: bool = False  # run the gateway's MCP tools for the model (docs/websocket.md "Tools")


class AbortParams(P):
    run_id: str


def title_from(text: str) -> str:
    words = " ".join(text.split())
    return words if len(words) <= TITLE_CHARS else words[: TITLE_CHARS - 1].rstrip() + "…"


def limited(wait: int) -> WsError:
    return WsError("rate_limited", f"Too many messages; try again in {wait} s.", retry_after=wait)


async def chat_send(c: Caller, p: SendParams) -> dict[str, Any]:
    hub, user = c.hub, c.user
    if p.regenerate and p.session_id is None:
        raise WsError("bad_params", "sessionId: required with regenerate.")
    if not p.regenerate and not p.text.strip():
        raise WsError("bad_params", "text: must not be empty.")
    check_model(p.model)
    now = time.monotonic()
    fresh = p.session_id is None
    if p.session_id is None:
        # a new chat is created with the model it will use (one store call less, and no empty
        # chat left behind when there is no model)
        model = chat_model(c, p.model, None)
        wait = take([(hub.per_user, user)], now)
        if wait:
            raise limited(wait)
        await room_for_session(c)
        session = await hub.store.create_session(user, title_from(p.text), model)
        hub.per_session.hit(session.id, now)
        hub.runs.claim(session.id)
    else:
        found = await hub.store.get_session(user, p.session_id)
        if found is None:
            raise WsError("not_found", f"No session {p.session_id!r}.")
        session = found
        if session.message_count >= hub.settings.max_messages_per_session and not p.regenerate:
            raise WsError("bad_params", f"This chat holds {session.message_count} messages, the most this gateway "
                                        f"keeps in one; start a new chat.")
        if not hub.runs.claim(session.id):
            raise busy()
        wait = take([(hub.per_user, user), (hub.per_session, session.id)], now)
        if wait:
            hub.runs.release(session.id)
            raise limited(wait)
    run_id = new_run_id()
    # with Redis, the session across workers too (web/runs_redis.py)
    if hub.runs.shared is not None and not await hub.runs.claim_shared(session.id, run_id, user, c.conn.id):
        hub.runs.release(session.id)
        raise busy()
    try:
        return await _start(c, session, p, run_id, fresh)
    except BaseException:
        hub.runs.release(session.id, run_id)
        raise


def busy() -> WsError:
    return WsError("busy", "This session is still answering; wait for it or abort it.")


def new_run_id() -> str:
    return "run_" + os.urandom(8).hex()


def chat_model(c: Caller, asked: str | None, session_model: str | None) -> str:
    """The model a turn uses: the one asked for, else the session's, else the gateway's default."""
    model = asked or session_model or c.hub.default_model()
    if not model:
        raise WsError("bad_params", "model: no model is configured on this gateway.")
    return model


async def _start(c: Caller, session: SessionRecord, p: SendParams, run_id: str, fresh: bool) -> dict[str, Any]:
    """`fresh`: the session was created for this message (it has no history to read)."""
    hub, user, store = c.hub, c.user, c.hub.store
    model = chat_model(c, p.model, session.model)
    if model != session.model:
        session = await store.set_session_model(user, session.id, model) or session
    if not session.title and not p.regenerate:  # an untitled session is named by its first message
        session = await store.rename_session(user, session.id, title_from(p.text)) or session
    if p.regenerate:
        await store.delete_last_assistant(user, session.id)
        history = await store.list_messages(user, session.id)
        if not history or history[-1].role != "user":
            raise WsError("bad_params", "regenerate: the session has no question to answer again.")
        asked = history[-1]
    else:
        asked, session = await store.add_message(user, session.id, "user", p.text, model)
        history = [asked] if fresh else await store.list_messages(user, session.id)
    req = ChatRequest(model=model, messages=to_messages(history), stream=True, include_usage=True)
    run = ChatRun(hub.pipeline, store, c.conn, session, model, req, await caller_identity(c), run_id,
                  tools=p.tools and hub.pipeline.agent is not None)
    # The run's task first runs at the next suspension point; the socket queues this reply before
    # that, so `res` always precedes the run's first event.
    hub.runs.start(run)
    return {"runId": run.id, "sessionId": session.id, "userMessageId": asked.id, "model": model, "tools": run.tools}


async def caller_identity(c: Caller) -> Principal:
    """Who pays for the chat: the virtual key the user logged in with (checked again now: a revoked
    or expired key stops at once), else the master key (or nobody, with auth off)."""
    p = c.conn.principal
    if p.kind != "key" or p.key_hash is None:
        return MASTER if p.kind == "admin" else ANONYMOUS
    try:
        return await c.hub.tenancy.authn.resolve_hash(p.key_hash)
    except Unauthorized as exc:
        raise WsError("unauthorized", exc.message) from None
    except GatewayError as exc:  # the key store is unreachable
        raise WsError("upstream_error", exc.message) from None


def to_messages(history: list[MessageRecord]) -> list[Message]:
    """The conversation as the model sees it: failed answers and empty turns are left out."""
    return [Message(m.role, m.content) for m in history
            if m.role in ("user", "assistant") and m.content and m.status != "error"]


async def chat_abort(c: Caller, p: AbortParams) -> dict[str, Any]:
    return {"runId": p.run_id, "aborted": await c.hub.runs.abort(p.run_id, c.user, c.conn)}
