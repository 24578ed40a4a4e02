"""The control panel's two actions on one request of the request log (docs/panel.md, "Replay and open
in chat"), for admins only (web/panel.py checks the session, the Origin and the CSRF token first):

    POST /panel/api/requests/{id}/replay   its logged request sent again, not streamed, through the
                                           whole pipeline (web/replay.py), as the signed-in admin
    POST /panel/api/requests/{id}/chat     a new chat session of the signed-in admin's holding its
                                           conversation (and the logged answer), to continue it

Both need the request body in the log (`log_bodies` on for its model or key): without it, 409
`no_request_body`. The replay runs as the panel's admin, never as the original key (an admin must
not spend a user's budget or use up its limits), is logged with `replay_of` and audited as
`request.replay`; one replay per admin at a time, and REPLAYS_PER_MINUTE. Opening in chat is
audited as `request.chat` (it copies a user's conversation) and bounded like sessions.create."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any, Protocol
from urllib.parse import quote

import msgspec

from clawdbot.api.admin_api import ConflictError
from clawdbot.api.admin_requests import MICROS_PER_USD, RequestsApi, answer_text
from clawdbot.api.exchange import Exchange
from clawdbot.api.routes import Route
from clawdbot.core.errors import BadRequest, GatewayError, NotFound, Unauthorized
from clawdbot.pipeline.policy import Pipeline
from clawdbot.tenancy.principal import ANONYMOUS, MASTER
from clawdbot.tenancy.principal import Principal as Identity
from clawdbot.tenancy.service import Tenancy
from clawdbot.web.auth import Authenticator, Principal
from clawdbot.web.hub import Hub
from clawdbot.web.ratelimit import SlidingWindow, take
from clawdbot.web.replay import chat_completion

log = logging.getLogger("clawdbot.panel")
PREFIX = "/panel/api/requests/"
ACTIONS = ("replay", "chat")
ACTION_BODY_BYTES = 1024  # `{}`: the request to act on is in the path, the rest comes from the log
REPLAYS_PER_MINUTE = 10  # per admin; and one at a time
_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")  # a request id as api/app.py accepts one
NO_STORE = [(b"cache-control", b"no-store")]
_encode = msgspec.json.Encoder().encode


class Limited(GatewayError):
    status = 429
    type = "rate_limit_error"


class Action(msgspec.Struct, forbid_unknown_fields=True):
    """The body of both actions: an empty object (what to do is the path, what to send is the log)."""


class PanelAccess(Protocol):
    """What these actions need of the control panel (web/panel.py)."""

    auth: Authenticator

    async def _caller(self, ex: Exchange, write: bool) -> str: ...


class PanelRequests:
    def __init__(self, panel: PanelAccess, pipeline: Pipeline, tenancy: Tenancy) -> None:
        self.panel = panel
        self.tenancy = tenancy
        self.log = RequestsApi(pipeline.request_log)
        self.hub: Hub | None = None  # the chat page's store and bounds: set by the web layer (web/layer.py)
        self.replay_route = Route("POST", self.replay, True, False, max_body=ACTION_BODY_BYTES)
        self.chat_route = Route("POST", self.open_in_chat, True, False, max_body=ACTION_BODY_BYTES)
        self.templates = {PREFIX + "{id}/replay": self.replay_route, PREFIX + "{id}/chat": self.chat_route}
        self._replaying: set[str] = set()
        self._replays = SlidingWindow(REPLAYS_PER_MINUTE)

    def route(self, path: str) -> Route | None:
        """POST /panel/api/requests/<id>/<action>; an unknown action is a 404 like any unknown path."""
        _, _, action = path[len(PREFIX):].rpartition("/")
        return self.replay_route if action == "replay" else self.chat_route if action == "chat" else None

    # -- shared ----------------------------------------------------------------------------------

    async def _start(self, ex: Exchange, body: bytes) -> tuple[str, Principal, str, dict[str, Any]]:
        """(the actor, the session's principal, the request id, its record with bodies) once the
        caller is an admin, the body is `{}` and the request is in the log."""
        actor = await self.panel._caller(ex, write=True)
        who = self.panel.auth.principal(dict(ex.scope["headers"]))
        if who is None:  # _caller let it through: cannot happen, but never act for nobody
            raise Unauthorized("Log in first (POST /auth/login).", code="login_required")
        rid = ex.scope["path"][len(PREFIX):].rpartition("/")[0]
        if not _ID.fullmatch(rid):
            raise BadRequest("Name the request: POST /panel/api/requests/<request id>/(replay|chat), the id as the "
                             "request log shows it.", param="id", code="invalid_value")
        try:
            msgspec.json.decode(body or b"{}", type=Action)
        except msgspec.ValidationError as exc:
            raise BadRequest(f"Send an empty JSON object: {exc}.", code="invalid_value") from None
        except msgspec.DecodeError:
            raise BadRequest("Send an empty JSON object ({}).", code="invalid_json") from None
        return actor, who, rid, await self.log.get(rid)

    # -- replay ------------------------------------------------------------------------------------

    async def replay(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        actor, who, rid, rec = await self._start(ex, body)
        request, streamed = replay_body(rec)
        if actor in self._replaying:
            raise Limited("A replay of yours is still running: wait for its answer.", code="replay_busy")
        wait = take([(self._replays, actor)], time.monotonic())
        if wait:
            raise Limited(f"At most {REPLAYS_PER_MINUTE} replays a minute; try again in {wait} s.",
                          code="replay_rate_limited", headers={"Retry-After": str(wait)})
        identity = await self._identity(who)
        self._replaying.add(actor)
        try:
            ctx, answer = await chat_completion(pl, identity, _encode(request), replay_of=rid)
        finally:
            self._replaying.discard(actor)
        out = {"replay_of": rid, "request_id": ctx.request_id, "status": answer.status, "model": request["model"],
               "streamed": streamed, "principal": ctx.principal, "key_id": identity.key_id,
               "service": ctx.service, "upstream_model": ctx.upstream_model, "response_model": ctx.response_model,
               "latency_ms": round(ctx.elapsed_ms(), 1), "prompt_tokens": ctx.prompt_tokens,
               "completion_tokens": ctx.completion_tokens, "tokens_estimated": ctx.tokens_estimated,
               "cost_usd": ctx.cost_micros / MICROS_PER_USD if ctx.cost_micros is not None else None,
               "cached": ctx.cost_free, "attempts": ctx.attempts or None, "plugins": ctx.plugin_notes,
               **_answer(answer.status, bytes(answer.body), answer.truncated)}
        out["audited"] = await log_audit(self.tenancy, actor, "request.replay", {
            "request_id": rid, "replay_id": ctx.request_id, "model": request["model"], "status": answer.status,
            "key_id": identity.key_id})
        await ex.json(200, _encode(out), NO_STORE)

    async def _identity(self, who: Principal) -> Identity:
        """Who the replay runs (and is charged) as: the admin signed in to the panel. The master key,
        an admin key (checked again now: revoked since the login, it stops here), or nobody with auth
        off (the local admin)."""
        if who.kind == "admin":
            return MASTER
        if who.key_hash is None:
            return ANONYMOUS
        return await self.tenancy.authn.resolve_hash(who.key_hash)

    # -- open in chat ------------------------------------------------------------------------------

    async def open_in_chat(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        actor, who, rid, rec = await self._start(ex, body)
        hub = self.hub
        if hub is None:
            raise NotFound("This process serves no chat page.", code="unknown_url")
        turns, left_out, model = conversation(rec)
        settings, user, store = hub.settings, who.user, hub.store
        if len(turns) > settings.max_messages_per_session:
            raise ConflictError(f"Request {rid} holds {len(turns)} messages; a chat keeps at most "
                                f"{settings.max_messages_per_session} (web.max_messages_per_session).",
                                code="chat_too_long")
        wait = take([(hub.per_user_changes, user)])
        if wait:
            raise Limited(f"Too many changes to chats; try again in {wait} s.", code="rate_limited",
                          headers={"Retry-After": str(wait)})
        if await store.count_sessions(user) >= settings.max_sessions_per_user:
            raise ConflictError(f"You have {settings.max_sessions_per_user} chats, the most this gateway keeps "
                                f"(web.max_sessions_per_user); delete some first.", code="too_many_chats")
        title = f"From request {rid}"
        session = await store.create_session(user, title, model)
        for role, text, status in turns:
            await store.add_message(user, session.id, role, text, model, status)
        answered = bool(turns) and turns[-1][0] == "assistant" and rec.get("answer") is not None
        out = {"session_id": session.id, "url": "/#" + quote(session.id, safe=""), "title": title, "model": model,
               "messages": len(turns), "left_out": left_out, "answer": answered}
        out["audited"] = await log_audit(self.tenancy, actor, "request.chat", {
            "request_id": rid, "session_id": session.id, "user": user, "messages": len(turns)})
        await ex.json(200, _encode(out), NO_STORE)


def replay_body(rec: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The logged request as it is sent again (not streamed), and whether it was streamed. 409 when
    the log cannot give it: no body kept, a body cut at max_body_bytes, not a chat request."""
    rid, body = rec["id"], rec.get("request_body")
    if body is None:
        raise ConflictError(f"Request {rid} was logged without its request body (log_bodies is off for its model "
                            f"and key): there is nothing to send again.", code="no_request_body")
    if not isinstance(body, dict):
        raise ConflictError(f"Request {rid}'s body was cut at request_log.max_body_bytes: it cannot be sent again.",
                            code="request_body_cut")
    if not isinstance(body.get("messages"), list):
        raise ConflictError(f"Request {rid} is not a chat request (its body has no messages).",
                            code="not_a_chat_request")
    streamed = body.get("stream") is True
    out = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    out["model"] = body.get("model") or rec.get("model")
    if not isinstance(out["model"], str) or not out["model"]:
        raise ConflictError(f"Request {rid}'s body names no model.", code="not_a_chat_request")
    return out, streamed


def _answer(status: int, body: bytes, truncated: bool) -> dict[str, Any]:
    """The answer's text, or the error the gateway answered with."""
    text = body.decode("utf-8", errors="replace")
    if 200 <= status < 300:
        return {"answer": answer_text(text), "error": None, "answer_truncated": truncated}
    try:
        err = json.loads(text).get("error")
    except (ValueError, AttributeError):
        err = None
    if isinstance(err, dict):
        return {"answer": None, "error": {"code": err.get("code"), "message": err.get("message")},
                "answer_truncated": truncated}
    return {"answer": None, "error": {"code": None, "message": text[:1000] or f"HTTP {status}"},
            "answer_truncated": truncated}


def conversation(rec: dict[str, Any]) -> tuple[list[tuple[str, str, str]], int, str]:
    """The logged request as chat turns (role, text, status), the messages left out, and the model.
    The chat page holds user and assistant text only: a system, developer or tool message, and a
    message without text (an image, a tool call alone), are left out and counted. The logged answer,
    when its body was kept, is the last assistant turn (`aborted`: cut at max_body_bytes)."""
    request, _ = replay_body(rec)
    turns: list[tuple[str, str, str]] = []
    left_out = 0
    for m in request["messages"]:
        role = m.get("role") if isinstance(m, dict) else None
        text = _text(m.get("content")) if isinstance(m, dict) else None
        if role in ("user", "assistant") and text:
            turns.append((role, text, "complete"))
        else:
            left_out += 1
    answer = rec.get("answer")
    if isinstance(answer, str) and answer:
        turns.append(("assistant", answer, "aborted" if rec.get("body_truncated") else "complete"))
    if not turns:
        raise ConflictError(f"Request {rec['id']} holds no user or assistant text to continue.",
                            code="not_a_chat_request")
    return turns, left_out, request["model"]


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: the text ones, in order
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return None


async def log_audit(tenancy: Tenancy, actor: str, action: str, after: dict[str, Any]) -> bool | None:
    """An audit entry for an action of the panel's; None without an audit log (no master key). False
    when it could not be written: the action is done (a replay cannot be taken back), so the answer
    says so rather than failing. The request id is in `after`, not the entry's target: a target id is
    at most 32 characters (state/tables.py), a request id up to 128."""
    store = tenancy.store
    if store is None:
        return None
    try:
        await store.note(actor, action, None, None, after)
    except Exception as exc:
        log.error("control panel: the audit entry of %s on %s could not be written: %s", action,
                  after.get("request_id"), exc)
        return False
    return True
