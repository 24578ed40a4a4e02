"""A chat completion made inside the gateway, for the control panel's Replay (web/panel_requests.py):
the /v1/chat/completions handler itself (api/chat.py: plugins, routing, attempts, fallbacks) behind
the same stages as a client's request (admit: allowed models, limits, budgets; end: settle, the
access log, the request log), under a caller the panel names instead of a Bearer key, answering
into memory instead of a socket. No HTTP call to itself: nothing leaves the process but the upstream
call, and the caller needs no key in clear.

What api/app.py does around a handler (the context, the key's routing inputs, the body's shape,
admission, the error as a response, the end) is done here in the same order; the handler and the
stages are the ones every client goes through, so a limit, a plugin or a route applies to a replay
exactly as to the request it replays."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from typing import Any

from clawdbot.api.app import new_context
from clawdbot.api.chat import chat_completions
from clawdbot.api.errors import error_body_for, error_status, internal_error
from clawdbot.api.exchange import Exchange
from clawdbot.api.metered import read_head
from clawdbot.codecs.bounds import check_json_shape
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import GatewayError
from clawdbot.observability.logging import request_id_var
from clawdbot.pipeline.policy import Pipeline
from clawdbot.tenancy.principal import ANONYMOUS, Principal

log = logging.getLogger("clawdbot.panel")
CHAT_PATH = "/v1/chat/completions"
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # what is kept of the answer for the page; the rest is dropped


class Answer:
    """The response as the handler sent it: status, headers, body (bounded)."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.truncated = False

    async def send(self, msg: MutableMapping[str, Any]) -> None:
        if msg["type"] == "http.response.start":
            self.status = msg["status"]
            self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in msg.get("headers", [])}
        elif msg["type"] == "http.response.body":
            data = msg.get("body", b"")
            room = MAX_ANSWER_BYTES - len(self.body)
            if len(data) > room:
                self.truncated = True
                data = data[:max(room, 0)]
            self.body += data


async def _no_more_body() -> dict[str, Any]:
    # The body is handed to the handler whole; nobody watches for a disconnect (there is no client).
    return {"type": "http.request", "body": b"", "more_body": False}


def _as_caller(ctx: RequestContext, identity: Principal) -> None:
    """As api/app.py's authenticate does for a key: the principal, its tag and priority."""
    if identity is ANONYMOUS:
        return
    ctx.principal, ctx.identity = identity.name, identity
    if identity.tags:
        ctx.tag = identity.tags[0]
    prio = identity.metadata.get("priority")
    if prio is not None:
        ctx.priority = str(prio)[:64]


async def chat_completion(pl: Pipeline, identity: Principal, body: bytes,
                          replay_of: str | None = None) -> tuple[RequestContext, Answer]:
    """POST /v1/chat/completions with `body` (a JSON chat request, not streamed) as `identity`.
    Returns the request's context once it has ended (settled and logged) and its response; a
    refusal or a failure is a response too (its status and error body), never raised."""
    ctx = new_context(None)
    ctx.replay_of = replay_of
    ctx.headers = {}
    _as_caller(ctx, identity)
    out = Answer()
    scope = {"type": "http", "method": "POST", "path": CHAT_PATH, "raw_path": CHAT_PATH.encode(),
             "query_string": b"", "headers": [(b"content-type", b"application/json")], "client": None}
    ex = Exchange(scope, _no_more_body, out.send, ctx)
    token = request_id_var.set(ctx.request_id)
    if pl.tracer is not None:
        ctx.trace = pl.tracer.start(ctx, CHAT_PATH, None)
    try:
        srv = pl.gateway.config.server
        check_json_shape(body, srv.max_json_depth, srv.max_json_items)
        if pl.meters(identity):
            head = read_head(body, CHAT_PATH)
            ex.resp_headers += await pl.admit(ctx, identity, head.model, head.prompt_estimate, head.completion_cap())
        await chat_completions(ex, pl, body)
    except asyncio.CancelledError:  # the admin left the page (the panel's call was cancelled): as on /v1
        ctx.error, ctx.cancelled, ex.status = "client disconnected", True, 499
        raise
    except GatewayError as exc:
        await _fail(ex, exc)
    except Exception:
        log.exception("replay %s failed", ctx.request_id)
        await _fail(ex, internal_error(ctx.request_id))
    finally:
        await pl.end(ctx, "POST", CHAT_PATH, ex.status)
        request_id_var.reset(token)
    return ctx, out


async def _fail(ex: Exchange, exc: GatewayError) -> None:
    ex.ctx.error, ex.ctx.error_code = exc.message, exc.code
    if ex.started:
        ex.status = exc.status
        return
    status = error_status(exc)
    await ex.json(status, error_body_for(CHAT_PATH, exc, status))
