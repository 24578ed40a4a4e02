"""The request log over the admin API (observability/request_log.py):

    GET /admin/api/requests           newest first; filters and a cursor (below)
    GET /admin/api/requests/{id}      one record, with its bodies when they were kept
    GET /admin/api/requests/stream    records as requests end (Server-Sent Events): `clawdbot tail`

Filters: `since`, `until` (ms since the epoch, or an ISO 8601 date or time, UTC unless it says
otherwise; since <= at < until), `key_id`, `model`, `status` (200, or a class: 4xx), `errors`
(true: status 400 and up, or none), `min_latency_ms`; the list also takes `limit` (1-1000) and
`cursor` (the `next_cursor` of the page before). Unknown parameters and bad values are refused
with 400 and the parameter named, never ignored."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import json
import math
from typing import Any

import msgspec

from clawdbot.api.exchange import Exchange
from clawdbot.api.http import SSE
from clawdbot.core.errors import BadRequest, Forbidden, GatewayError, NotFound
from clawdbot.observability.request_hub import TooManySubscribers
from clawdbot.observability.request_log import RequestLog
from clawdbot.state.request_log_base import MAX_PAGE, RequestLogStore, RequestQuery, RequestRecord

FILTERS = ("key_id", "model", "status", "errors", "min_latency_ms")
LIST_PARAMS = ("since", "until", *FILTERS, "limit", "cursor")
MICROS_PER_USD = 1_000_000
KEEPALIVE_S = 15.0  # a comment line this often: proxies keep the stream open, a gone client is noticed
_encode = msgspec.json.Encoder().encode


class TooManyStreams(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "too_many_streams"


def _bad(name: str, why: str) -> BadRequest:
    return BadRequest(f"Query parameter {name!r} {why}.", param=name, code="invalid_query")


def _time(q: dict[str, str], name: str) -> int | None:
    text = q.get(name)
    if text is None:
        return None
    if text.isascii() and text.isdigit():
        if len(text) > 15:
            raise _bad(name, "is out of range")
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _bad(name, "must be ms since the epoch or an ISO 8601 date or time (2026-03-01T12:00:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def _status(q: dict[str, str]) -> tuple[int | None, int | None]:
    text = q.get("status")
    if text is None:
        return None, None
    low = text.lower()
    if len(low) == 3 and low[0] in "12345" and low[1:] == "xx":
        return None, int(low[0])
    if text.isascii() and text.isdigit() and len(text) == 3 and 100 <= int(text) <= 599:
        return int(text), None
    raise _bad("status", "must be an HTTP status (200) or a class (2xx, 4xx, 5xx)")


def _errors(q: dict[str, str]) -> bool:
    text = q.get("errors", "false").lower()
    if text not in ("true", "false", "1", "0"):
        raise _bad("errors", "must be true or false")
    return text in ("true", "1")


def _latency(q: dict[str, str]) -> float | None:
    text = q.get("min_latency_ms")
    if text is None:
        return None
    try:
        value = float(text) if len(text) <= 20 else math.nan
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise _bad("min_latency_ms", "must be a number of milliseconds, 0 or more")
    return value


def _limit(q: dict[str, str]) -> int:
    text = q.get("limit", "100")
    if not (text.isascii() and text.isdigit() and len(text) <= 9) or not 1 <= int(text) <= MAX_PAGE:
        raise _bad("limit", f"must be an integer from 1 to {MAX_PAGE}")
    return int(text)


def encode_cursor(cursor: tuple[int, int] | None) -> str | None:
    if cursor is None:
        return None
    return base64.urlsafe_b64encode(f"{cursor[0]}.{cursor[1]}".encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        at, seq = raw.split(".")
        if not (at.isdigit() and seq.isdigit() and len(at) <= 18 and len(seq) <= 18):
            raise ValueError(raw)
        return int(at), int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _bad("cursor", "is not a cursor this API gave out (pass `next_cursor` as it came)") from None


def parse_query(q: dict[str, str], allowed: tuple[str, ...] = LIST_PARAMS) -> RequestQuery:
    for name in q:
        if name not in allowed:
            raise BadRequest(f"Unknown query parameter {name!r} (known: {', '.join(allowed)}).",
                             param=name, code="invalid_query")
    since, until = _time(q, "since"), _time(q, "until")
    if since is not None and until is not None and until <= since:
        raise _bad("until", "must be after 'since'")
    status, status_class = _status(q)
    for name in ("key_id", "model"):
        if name in q and not 0 < len(q[name]) <= 256:
            raise _bad(name, "must be 1 to 256 characters")
    cursor = q.get("cursor")
    return RequestQuery(since=since, until=until, key_id=q.get("key_id"), model=q.get("model"), status=status,
                        status_class=status_class, errors=_errors(q), min_latency_ms=_latency(q),
                        cursor=decode_cursor(cursor) if cursor is not None else None, limit=_limit(q))


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
        begin and every KEEPALIVE_S; a reader that falls behind gets `event: dropped` and the end."""
        query = parse_query(q, FILTERS)
        try:
            sub = self.log.hub.subscribe(query)
        except TooManySubscribers as exc:
            raise TooManyStreams(f"{exc}; try again later.") from None
        gone = asyncio.get_running_loop().create_task(_disconnect(ex, sub.end))
        try:
            await ex.start(200, SSE, [(b"cache-control", b"no-store"), (b"x-accel-buffering", b"no")])
            await ex.write(b": request log stream\n\n")
            while True:
                try:
                    rec = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
                except TimeoutError:
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
