"""OpenAI's Responses API: POST /v1/responses through the same pipeline as every dialect
(api/canonical.py), and the stored responses: GET and DELETE /v1/responses/{id}, GET
/v1/responses/{id}/input_items. A stored response belongs to the key that created it (the master
key, a virtual key, or nobody when auth is off); `previous_response_id` continues its conversation
(its instructions are not carried over, as in OpenAI's API). Parsing and encoding live in
codecs/openai_responses*.py; what is refused is listed in docs/dialects.md."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from clawdbot.api import canonical, encoded
from clawdbot.api.errors import method_not_allowed
from clawdbot.api.exchange import Exchange
from clawdbot.api.http import decode_query, query_params
from clawdbot.api.integral import parse_lax
from clawdbot.api.metered import prompt_estimate
from clawdbot.api.request_bounds import check_output_limit
from clawdbot.codecs import openai_responses as ro
from clawdbot.codecs import openai_responses_out as rout
from clawdbot.core.errors import BadRequest, NotFound
from clawdbot.core.types import ChatResponse, Message
from clawdbot.pipeline.policy import Pipeline
from clawdbot.state.responses_base import StoredResponse

PATH = "/v1/responses"
MAX_ITEMS_PAGE = 100
log = logging.getLogger("clawdbot.responses")
_encode = msgspec.json.Encoder().encode


def owner(ex: Exchange) -> str:
    p = ex.ctx.identity
    return "anonymous" if p is None else (p.key_id or p.kind)


def _now_ms() -> int:
    return int(time.time() * 1000)


async def create(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    p, body = parse_lax(ro.parse, body)
    check_output_limit(p.chat.max_tokens, "max_output_tokens")
    ctx = ex.ctx
    settings = pl.gateway.config.responses
    ctx.model, ctx.stream = p.chat.model, p.chat.stream
    budget_cap = ctx.completion_cap
    chat = p.chat
    ctx.completion_cap = chat.max_tokens if chat.max_tokens is not None else budget_cap
    if chat.max_tokens is None and budget_cap is not None:  # the limit a budget reserved goes upstream
        chat = msgspec.structs.replace(chat, max_tokens=budget_cap)
    store = settings.store and p.body.store is not False and pl.responses is not None
    history: list[Message] = []
    if p.body.previous_response_id is not None:
        history = await _history(ex, pl, p, len(body))
        system = chat.messages[: len(chat.messages) - len(p.turn)]  # this request's instructions
        chat = msgspec.structs.replace(chat, messages=[*system, *history, *p.turn])
    shell = rout.Shell(p, p.chat.model, store)

    async def whole(resp: ChatResponse) -> None:
        obj = rout.encode_response(shell, resp)
        if store and not await _save(ex, pl, shell, obj, p, [*history, *p.turn, resp.message]):
            obj["store"] = False  # the truth: it cannot be continued or fetched
        await ex.json(200, _encode(obj))

    async def relay(it: Any) -> None:
        enc = rout.EventEncoder(shell)
        await encoded.relay(ex, it, enc, lambda: prompt_estimate(body, PATH))
        if store and enc.final is not None:  # the client has it all: stored for previous_response_id
            await _save(ex, pl, shell, enc.final, p, [*history, *p.turn, enc.message()])

    await canonical.answer(ex, pl, chat, whole, relay)


async def _history(ex: Exchange, pl: Pipeline, p: ro.Parsed, body_bytes: int) -> list[Message]:
    rid = p.body.previous_response_id
    missing = BadRequest(f"Previous response with id '{rid}' not found.", param="previous_response_id",
                         code="previous_response_not_found")
    if pl.responses is None or not pl.gateway.config.responses.store:
        raise missing
    prev = await pl.responses.get(owner(ex), rid or "", _now_ms())
    if prev is None:
        raise missing
    limit = pl.gateway.config.responses.max_conversation_bytes
    if len(_encode(prev.conversation)) + body_bytes > limit:
        raise BadRequest(f"The conversation behind '{rid}' has grown past {limit} bytes "
                         "(responses.max_conversation_bytes): start a new one with the items you need.",
                         param="previous_response_id", code="conversation_too_large")
    try:
        return msgspec.convert(prev.conversation, list[Message])
    except msgspec.ValidationError:  # written by another version of clawdbot, unreadable here
        raise missing from None


async def _save(ex: Exchange, pl: Pipeline, shell: rout.Shell, obj: dict[str, Any], p: ro.Parsed,
                conversation: list[Message]) -> bool:
    settings = pl.gateway.config.responses
    now = _now_ms()
    rec = StoredResponse(shell.id, owner(ex), now, now + int(settings.retention_hours * 3_600_000), obj, p.items,
                         msgspec.to_builtins(conversation))
    assert pl.responses is not None
    try:
        await pl.responses.put(rec, settings.max_per_key)
    except Exception as exc:  # the answer still goes out; the database's trouble is logged
        log.warning("response %s not stored: %s", shell.id, type(exc).__name__)
        return False
    return True


# ---- GET / DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items ------------------------


async def stored(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    path: str = ex.scope["path"]
    # /v1/responses/{id}[/input_items], or the same without /v1 (api/routes.py routes both here)
    rid, _, sub = path.split("/responses/", 1)[1].partition("/")
    if not rid or sub not in ("", "input_items"):
        raise NotFound(f"Unknown path: {path}", code="unknown_url")
    if sub and ex.scope["method"] != "GET":  # routes.py routes it GET only: never reached
        raise method_not_allowed(["GET"], path)
    missing = NotFound(f"Response with id '{rid}' not found.", param="response_id")
    if pl.responses is None:
        raise missing
    if ex.scope["method"] == "DELETE":
        if not await pl.responses.delete(owner(ex), rid):
            raise missing
        return await ex.json(200, _encode({"id": rid, "object": "response", "deleted": True}))
    rec = await pl.responses.get(owner(ex), rid, _now_ms())
    if rec is None:
        raise missing
    if sub == "input_items":
        return await ex.json(200, _encode(_items_page(rec, decode_query(query_params(ex.scope), InputItemsQuery))))
    if query_params(ex.scope).get("stream") in ("true", "1"):
        raise BadRequest("Streaming a stored response again is not supported; GET it without 'stream'.",
                         param="stream", code="unsupported_parameter")
    await ex.json(200, _encode(rec.response))


class InputItemsQuery(msgspec.Struct, kw_only=True):
    """GET /v1/responses/{id}/input_items (OpenAI's: other parameters are let through, unread)."""

    limit: Annotated[int, Meta(ge=1, le=MAX_ITEMS_PAGE)] = 20
    order: Literal["asc", "desc"] = "desc"
    after: Annotated[str, Meta(min_length=1, description="an item id: the page starts after it")] | UnsetType \
        = UNSET


def _items_page(rec: StoredResponse, q: InputItemsQuery) -> dict[str, Any]:
    items = rec.input_items if q.order == "asc" else rec.input_items[::-1]
    if not isinstance(q.after, UnsetType):
        ids = [i.get("id") for i in items]
        if q.after not in ids:
            raise NotFound(f"No input item with id '{q.after}'.", param="after", code="item_not_found")
        items = items[ids.index(q.after) + 1:]
    limit = q.limit
    page = items[:limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit}
