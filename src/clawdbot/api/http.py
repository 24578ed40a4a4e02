"""Small ASGI helpers: reading a bounded body, sending a complete response, refusing a WebSocket."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, TypeVar
from urllib.parse import parse_qs

import msgspec

from clawdbot.core.errors import BadRequest, PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


def header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope["headers"]:
        if k == name:
            return bytes(v)
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    length = header(scope, b"content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise BadRequest("Invalid Content-Length header.") from None
        if declared > limit:
            raise PayloadTooLarge(f"The request body is {declared} bytes; the limit is {limit}.")
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise ClientGone()
        chunk = msg.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The request body exceeds the limit of {limit} bytes.")
            chunks.append(chunk)
        if not msg.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def respond(
    send: Send, status: int, body: bytes, content_type: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *headers],
    })
    await send({"type": "http.response.body", "body": body})


JSON = b"application/json"
SSE = b"text/event-stream; charset=utf-8"


async def deny(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    """Refuse the upgrade with an HTTP status. Servers without the ASGI denial-response extension
    can only answer a close before accept, which they send as 403."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = msgspec.json.encode({"error": {"code": code, "message": message}})
        await send({"type": "websocket.http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


def query_params(scope: Mapping[str, Any]) -> dict[str, str]:
    """The request's query string, each name's last value. A name given without a value
    (`?limit=`) is there with "": an empty value is a value, checked like any other."""
    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


Q = TypeVar("Q", bound=msgspec.Struct)
_UNKNOWN = re.compile(r"unknown field `(?P<name>[^`]*)`")
_AT = re.compile(r"^(?P<msg>.*?) - at `\$\.(?P<name>[^`]*)`$", re.S)


def decode_query(q: Mapping[str, str], kind: type[Q]) -> Q:
    """The query parameters as the struct `kind` (strings converted to its field types, unknown
    names refused): the struct is both the check and, through api/openapi_params.py, what
    /openapi.json says of them. Every failure is a 400 naming the parameter."""
    try:
        return msgspec.convert(q, kind, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        unknown = _UNKNOWN.search(text)
        if unknown is not None:
            name = unknown.group("name")
            known = ", ".join(kind.__struct_fields__) or "none"
            raise BadRequest(f"Unknown query parameter {name!r} (known: {known}).", param=name,
                             code="invalid_query") from None
        at = _AT.match(text)
        name, msg = (at.group("name"), at.group("msg")) if at else (None, text)
        raise BadRequest(f"Query parameter {name!r}: {msg}.", param=name, code="invalid_query") from None
