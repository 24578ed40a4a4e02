"""The request log over the admin API (observability/request_log.py):

    GET /admin/api/requests           newest first; filters and a cursor (below)
    GET /admin/api/requests/{id}      one record, with its bodies when they were kept
    GET /admin/api/requests/stream    records as requests end (Server-Sent Events): `clawdbot tail`

Filters: `since`, `until` (ms since the epoch, or an ISO 8601 date or time, UTC unless it says
otherwise; since <= at < until, and until after since), `key_id`,
`model`, `status` (200, or a class: 4xx), `errors` (true: status 400 and up, or none),
`min_latency_ms`; the list also takes `limit` (1-1000) and `cursor` (the `next_cursor` of the page
before), the stream `timeout_s`. The structs in api/admin_queries.py are the check and the
document. Unknown parameters and bad values are refused with 400 and the parameter named, never
ignored."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import msgspec
from msgspec import UnsetType

from clawdbot.api.admin_queries import (
    RequestsQuery,
    StreamQuery,
    decode_cursor,
    encode_cursor,
    request_query,
)
from clawdbot.api.exchange import Exchange
from clawdbot.api.http import SSE, decode_query
from clawdbot.core.errors import Forbidden, GatewayError, NotFound
from clawdbot.observability.request_hub import TooManySubscribers
from clawdbot.observability.request_log import RequestLog
from clawdbot.state.request_log_base import RequestLogStore, RequestQuery, RequestRecord

__all__ = ["RequestsApi", "answer_text", "decode_cursor", "encode_cursor", "parse_query", "record_json"]

MICROS_PER_USD = 1_000_000
KEEPALIVE_S = 15.0  # a comment line this often: proxies keep the stream open, a gone client is noticed
_encode = msgspec.json.Encoder().encode


class TooManyStreams(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "too_many_streams"


def parse_query(q: dict[str, str], kind: type[RequestsQuery] | type[StreamQuery] = RequestsQuery) -> RequestQuery:
    """The list's (or the stream's) parameters as the store's query; 400 naming the parameter."""
    return request_query(decode_query(q, kind))


def record_json(rec: RequestRecord, bodies: bool = False) -> dict[str, Any]:
    out = msgspec.structs.asdict(rec)
    out.pop("seq", None)
    body, answer = out.pop("request_body"), out.pop("response_body")
    out["cost_usd"] = rec.cost_micros / MICROS_PER_USD if rec.cost_micros is not None else None
    out["has_bodies"] = body is not None or answer is not None
    if bodies:
        out["request_body"] = _json_or_text(body)
        out["response_body"] = answer
        out["answer"] = answer_text(answer)
    return out


def _json_or_text(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:  # cut at max_body_bytes: the text as it was kept
        return text


class RequestsApi:
    def __init__(self, request_log: RequestLog) -> None:
        self.log = request_log

    @property
    def store(self) -> RequestLogStore:
        if self.log.store is None:
            raise Forbidden("The request log is off: set request_log.enabled: true in the config.",
                            code="request_log_off")
        return self.log.store

    async def list(self, q: dict[str, str]) -> dict[str, Any]:
        store = self.store
        page = await store.query(parse_query(q))
        return {"object": "list", "data": [record_json(r) for r in page.records],
                "next_cursor": encode_cursor(page.next_cursor)}

    async def get(self, id: str) -> dict[str, Any]:
        rec = await self.store.get(id)
        if rec is None:
            raise NotFound(f"No request with id {id!r} in the request log (unknown, or past its retention).",
                           code="request_not_found")
        return record_json(rec, bodies=True)

    async def stream(self, ex: Exchange, q: dict[str, str]) -> None:
        """Server-Sent Events: one `data:` line of JSON per record (no bodies), a comment line to
        begin and every KEEPALIVE_S; a reader that falls behind gets `event: dropped` and the end.
        With `timeout_s` the stream ends (`event: end`) that many seconds after it began."""
        params = decode_query(q, StreamQuery)
        query = request_query(params)
        deadline = None if isinstance(params.timeout_s, UnsetType) else time.monotonic() + params.timeout_s
        try:
            sub = self.log.hub.subscribe(query)
        except TooManySubscribers as exc:
            raise TooManyStreams(f"{exc}; try again later.") from None
        gone = asyncio.get_running_loop().create_task(_disconnect(ex, sub.end))
        try:
            await ex.start(200, SSE, [(b"cache-control", b"no-store"), (b"x-accel-buffering", b"no")])
            await ex.write(b": request log stream\n\n")
            while True:
                left = KEEPALIVE_S if deadline is None else min(KEEPALIVE_S, deadline - time.monotonic())
                if left <= 0:
                    await ex.write(b"event: end\ndata: {\"reason\": \"timeout_s\"}\n\n")
                    break
                try:
                    rec = await asyncio.wait_for(sub.queue.get(), left)
                except TimeoutError:
                    if deadline is None or deadline > time.monotonic():
                        await ex.write(b": keep-alive\n\n")
                    continue
                if rec is None:
                    break
                await ex.write(b"data: " + _encode(record_json(rec)) + b"\n\n")
            if sub.dropped:
                await ex.write(b"event: dropped\ndata: {\"reason\": \"the reader fell behind\"}\n\n")
            await ex.end()
        finally:
            self.log.hub.unsubscribe(sub)
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gone


async def _disconnect(ex: Exchange, end: Any) -> None:
    while (await ex.receive())["type"] != "http.disconnect":
        pass
    ex.disconnected = True
    end()


def answer_text(body: str | None) -> str | None:
    """The answer's text from a kept response body, whichever dialect the upstream spoke: a JSON
    body (OpenAI, Anthropic, Ollama), Server-Sent Events (OpenAI, Anthropic) or NDJSON (Ollama)."""
    if not body:
        return None
    try:
        return _text_of(json.loads(body), whole=True)
    except ValueError:
        pass
    parts: list[str] = []
    for line in body.splitlines():
        line = line.strip()
        if line.startswith("data:"):
            line = line[5:].strip()
        if not line.startswith("{"):
            continue
        with contextlib.suppress(ValueError):
            parts.append(_text_of(json.loads(line), whole=False) or "")
    return "".join(parts) if parts else None


def _text_of(doc: Any, whole: bool) -> str | None:
    if not isinstance(doc, dict):
        return None
    choices = doc.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):  # OpenAI
        part = choices[0].get("message" if whole else "delta") or {}
        return _content(part.get("content")) if isinstance(part, dict) else None
    if isinstance(doc.get("content"), list):  # Anthropic message
        return _content(doc["content"])
    delta = doc.get("delta")
    if isinstance(delta, dict) and isinstance(delta.get("text"), str):  # Anthropic content_block_delta
        return str(delta["text"])
    message = doc.get("message")
    if isinstance(message, dict):  # Ollama /api/chat
        return _content(message.get("content"))
    if isinstance(doc.get("response"), str):  # Ollama /api/generate
        return str(doc["response"])
    return None


def _content(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return None
