"""The chat socket's JSON frames (docs/websocket.md): parsing requests, encoding responses and
events, and the protocol's error codes. Pure functions, no I/O."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from clawdbot.codecs.bounds import check_json_shape
from clawdbot.codecs.decoding import DECODE_ERRORS
from clawdbot.core.errors import BadRequest

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
T = TypeVar("T")
RequestId = str | int | None

ERROR_CODES = frozenset({
    "bad_frame", "unknown_method", "bad_params", "not_found", "rate_limited", "unauthorized", "forbidden", "busy",
    "upstream_error", "internal",
})


class WsError(Exception):
    """A request that fails: becomes one `res` frame with `ok: false`."""

    def __init__(self, code: str, message: str, retry_after: int | None = None) -> None:
        assert code in ERROR_CODES, code
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


class Request(msgspec.Struct):
    id: str | int
    method: str
    params: dict[str, Any]


def _readable_id(value: Any) -> RequestId:
    # bool is an int to Python, but not an id anyone meant
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


def parse_request(text: str | bytes, max_depth: int = 64, max_items: int = 100_000) -> Request:
    """Raises WsError("bad_frame") with `.request_id` set when an id could be read."""
    try:
        check_json_shape(text, max_depth, max_items)
    except BadRequest as exc:
        raise BadFrame(exc.message, None) from None
    try:
        obj = _decode(text)
    except DECODE_ERRORS:  # a str frame with a lone surrogate too (UnicodeEncodeError)
        raise BadFrame("The frame is not JSON.", None) from None
    if not isinstance(obj, dict):
        raise BadFrame("The frame must be a JSON object.", None)
    rid = _readable_id(obj.get("id"))
    if obj.get("type") != "req":
        raise BadFrame("Only frames of type 'req' are accepted.", rid)
    if rid is None:
        raise BadFrame("The frame needs an 'id' (a string or a number).", None)
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        raise BadFrame("The frame needs a 'method' (a string).", rid)
    params = obj.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise BadFrame("'params' must be an object.", rid)
    return Request(rid, method, params)


class BadFrame(WsError):
    def __init__(self, message: str, request_id: RequestId) -> None:
        super().__init__("bad_frame", message)
        self.request_id = request_id


_PATH = re.compile(r" - at `\$\.?([^`]*)`")


def params(cls: type[T], raw: dict[str, Any]) -> T:
    """Validate a request's params into `cls`; the error names the field, as the doc promises."""
    try:
        return msgspec.convert(raw, cls)
    except msgspec.ValidationError as exc:
        text = str(exc)
        m = _PATH.search(text)
        where = m.group(1) if m else ""
        what = _PATH.sub("", text)
        if what.startswith("Object missing required field"):
            raise WsError("bad_params", f"{what}.") from None
        raise WsError("bad_params", f"{where}: {what}" if where else what) from None


def ok(rid: RequestId, payload: Any) -> bytes:
    return _encode({"type": "res", "id": rid, "ok": True, "payload": payload})


def error(rid: RequestId, exc: WsError) -> bytes:
    err: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.retry_after is not None:
        err["retryAfter"] = exc.retry_after
    return _encode({"type": "res", "id": rid, "ok": False, "error": err})


def event(name: str, seq: int, payload: Any) -> bytes:
    return _encode({"type": "event", "event": name, "seq": seq, "payload": payload})


def event_parts(name: str, payload: Any) -> tuple[str, str]:
    """`event`'s text on either side of its seq: head + str(seq) + tail is the same frame. For events
    whose number is given later (by Redis, web/outbox_redis.py)."""
    return (f'{{"type":"event","event":{_encode(name).decode()},"seq":',
            f',"payload":{_encode(payload).decode()}}}')


def passing(name: str, payload: Any) -> bytes:
    """An event for this socket only (the control panel's live overview): no `seq`, never kept for
    a resume, lost with the socket."""
    return _encode({"type": "event", "event": name, "payload": payload})
