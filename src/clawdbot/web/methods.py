"""The socket's methods other than chat (web/chat.py) and connect.resume (web/socket.py): sessions,
models, status, debug. Each takes validated params and returns the `res` payload, or raises
WsError. Everything is scoped to the caller's principal."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NamedTuple

import msgspec

from clawdbot.core.errors import GatewayError
from clawdbot.observability.timeline import scope_of
from clawdbot.web.connections import Connection
from clawdbot.web.frames import WsError
from clawdbot.web.hub import Hub
from clawdbot.web.ratelimit import take
from clawdbot.web.views import message_view, session_view

_encode = msgspec.json.Encoder().encode
MAX_TITLE = 200
MAX_LIST = 200
MAX_MODEL = 200  # characters of a model name stored with a session


class Caller(NamedTuple):
    hub: Hub
    conn: Connection
    url: str  # this gateway as the client reached it (for debug)

    @property
    def user(self) -> str:
        return self.conn.principal.user


class P(msgspec.Struct, rename="camel"):
    pass


class NoParams(P):
    pass


# a time in ms since the epoch, as the stores keep them: an SQL INTEGER (64 bits) holds it
Millis = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class ListParams(P):
    limit: int = 50
    before: Millis | None = None


class SessionParams(P):
    session_id: str


class GetParams(P):
    session_id: str
    before: Millis | None = None  # createdAt of the oldest message already shown: the page before it


class CreateParams(P):
    title: str | None = None
    model: str | None = None


class RenameParams(P):
    session_id: str
    title: str


class StatusParams(P):
    session_id: str | None = None


class WatchParams(P):
    interval_ms: int = 2000
    model: str | None = None  # the overview of one model, one service, or both (timeline.py scope_of)
    service: str | None = None


MESSAGE_PAGE = 200  # messages read per sessions.get, before the byte budget trims the page


def clean_title(title: str) -> str:
    title = " ".join(title[: MAX_TITLE * 4].split())
    if not title:
        raise WsError("bad_params", "title: must not be empty.")
    return title[:MAX_TITLE]


def check_model(model: str | None) -> None:
    if model is not None and (not model or len(model) > MAX_MODEL or not model.isprintable()):
        raise WsError("bad_params", f"model: a model name of 1..{MAX_MODEL} printable characters.")


def changing(c: Caller) -> None:
    """sessions.create / rename / delete: each writes to the store, so each is rate-limited."""
    wait = take([(c.hub.per_user_changes, c.user)])
    if wait:
        raise WsError("rate_limited", f"Too many changes to sessions; try again in {wait} s.", retry_after=wait)


async def room_for_session(c: Caller) -> None:
    limit = c.hub.settings.max_sessions_per_user
    if await c.hub.store.count_sessions(c.user) >= limit:
        raise WsError("bad_params", f"You have {limit} chats, the most this gateway keeps; delete some first.")


def _within(views: list[dict[str, Any]], budget: int) -> int:
    """How many of `views`, from the first, fit in `budget` bytes of JSON (at least one)."""
    size = 0
    for i, v in enumerate(views):
        size += len(_encode(v)) + 1
        if size > budget and i > 0:
            return i
    return len(views)


async def sessions_list(c: Caller, p: ListParams) -> dict[str, Any]:
    if not 1 <= p.limit <= MAX_LIST:
        raise WsError("bad_params", f"limit: must be 1..{MAX_LIST}.")
    views = [session_view(s) for s in await c.hub.store.list_sessions(c.user, p.limit, p.before)]
    n = _within(views, c.hub.settings.max_page_bytes)  # page on with `before` = the last updatedAt
    return {"sessions": views[:n], "more": n < len(views)}


async def sessions_get(c: Caller, p: GetParams) -> dict[str, Any]:
    """The session and its newest messages that fit the page budget (oldest first); `hasMore` says
    older ones exist: ask again with `before` = the first message's createdAt."""
    s = await c.hub.store.get_session(c.user, p.session_id)
    if s is None:
        raise WsError("not_found", f"No session {p.session_id!r}.")
    rows = await c.hub.store.list_messages(c.user, p.session_id, MESSAGE_PAGE + 1, p.before)
    more = len(rows) > MESSAGE_PAGE
    newest_first = [message_view(m) for m in reversed(rows[-MESSAGE_PAGE:])]
    n = _within(newest_first, c.hub.settings.max_page_bytes)
    return {"session": session_view(s), "messages": newest_first[:n][::-1], "hasMore": more or n < len(newest_first),
            "running": await c.hub.runs.running(p.session_id)}


async def sessions_create(c: Caller, p: CreateParams) -> dict[str, Any]:
    check_model(p.model)
    title = clean_title(p.title) if p.title is not None else ""  # untitled: the first message names it
    changing(c)
    await room_for_session(c)
    s = await c.hub.store.create_session(c.user, title, p.model)
    return {"session": session_view(s)}


async def sessions_rename(c: Caller, p: RenameParams) -> dict[str, Any]:
    title = clean_title(p.title)
    changing(c)
    s = await c.hub.store.rename_session(c.user, p.session_id, title)
    if s is None:
        raise WsError("not_found", f"No session {p.session_id!r}.")
    return {"session": session_view(s)}


async def sessions_delete(c: Caller, p: SessionParams) -> dict[str, Any]:
    changing(c)
    # A run still answering in it is aborted: nobody could see its answer any more.
    run_id = await c.hub.runs.running(p.session_id)
    if run_id is not None:
        await c.hub.runs.abort(run_id, c.user, c.conn)
    if not await c.hub.store.delete_session(c.user, p.session_id):
        raise WsError("not_found", f"No session {p.session_id!r}.")
    return {"deleted": True}


async def models_list(c: Caller, p: NoParams) -> dict[str, Any]:
    models = []
    for m in c.hub.gateway.resolver.models():
        item: dict[str, Any] = {"id": m.id, "ownedBy": m.owned_by}
        if m.description:
            item["description"] = m.description
        models.append(item)
    return {"models": models, "default": c.hub.default_model()}


async def status(c: Caller, p: StatusParams) -> dict[str, Any]:
    hub = c.hub
    out: dict[str, Any] = {
        "version": hub.version, "role": hub.role, "uptimeS": round(time.time() - hub.started, 1),
        "user": c.user,
        "services": {name: {"reachable": st.reachable, "latencyMs": st.latency_ms}
                     for name, st in hub.gateway.monitor.states.items()},
    }
    if p.session_id is not None:
        s = await hub.store.get_session(c.user, p.session_id)
        if s is None:
            raise WsError("not_found", f"No session {p.session_id!r}.")
        out["model"] = s.model or hub.default_model()
    else:
        out["model"] = hub.default_model()
    return out


async def debug(c: Caller, p: NoParams) -> dict[str, Any]:
    return {"processes": await c.hub.debug.processes(c.url)}


async def panel_watch(c: Caller, p: WatchParams) -> dict[str, Any]:
    """The control panel's overview as `panel.overview` events on this socket, now and every
    `intervalMs` (1000..60000), until panel.unwatch or the socket closes (web/panel.py)."""
    panel = c.hub.panel
    if panel is None or await panel.role(c.conn.principal) is None:
        raise WsError("forbidden", "This key has no access to the control panel.")
    if not 1000 <= p.interval_ms <= 60_000:
        raise WsError("bad_params", "intervalMs: must be 1000..60000.")
    gateway, principal = c.hub.gateway, c.conn.principal
    try:
        scope = scope_of(gateway.config, p.model, p.service)
    except GatewayError as exc:  # a name the config does not have
        raise WsError("bad_params", exc.message) from None

    async def overview() -> dict[str, Any] | None:
        # the role again at every event: a key revoked or stripped of its panel role stops here
        return panel.overview_data(gateway, scope) if await panel.role(principal) is not None else None

    c.conn.watch("panel.overview", overview, p.interval_ms / 1000.0)
    return {"watching": True, "intervalMs": p.interval_ms}


async def panel_unwatch(c: Caller, p: NoParams) -> dict[str, Any]:
    c.conn.unwatch()
    return {"watching": False}


Handler = Callable[[Caller, Any], Awaitable[dict[str, Any]]]
METHODS: dict[str, tuple[type[P], Handler]] = {
    "sessions.list": (ListParams, sessions_list),
    "sessions.get": (GetParams, sessions_get),
    "sessions.create": (CreateParams, sessions_create),
    "sessions.rename": (RenameParams, sessions_rename),
    "sessions.delete": (SessionParams, sessions_delete),
    "models.list": (NoParams, models_list),
    "status": (StatusParams, status),
    "debug": (NoParams, debug),
    "panel.watch": (WatchParams, panel_watch),
    "panel.unwatch": (NoParams, panel_unwatch),
}
