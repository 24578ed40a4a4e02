"""JSON numbers as JSON Schema reads them: `5.0` is the integer 5. The codecs' structs take only
`5` for an integer field (msgspec's strict mode, which also keeps "5" from passing for a number), so
a body a client wrote with 5.0 (JavaScript's numbers, a float somewhere in a client's arithmetic)
would be refused although /openapi.json allows it. A handler parses as it always did; only when
that fails, and the body holds an integral float, it parses again with those written as integers.
The common request pays nothing; the retried one is decoded and encoded once more."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from clawdbot.codecs.decoding import DECODE_ERRORS
from clawdbot.core.errors import BadRequest

T = TypeVar("T")
_encode = msgspec.json.Encoder().encode


def _walk(value: Any) -> tuple[Any, bool]:
    if isinstance(value, float):
        if value.is_integer():
            return int(value), True
        return value, False
    if isinstance(value, list):
        changed = False
        for i, item in enumerate(value):
            value[i], hit = _walk(item)
            changed |= hit
        return value, changed
    if isinstance(value, dict):
        changed = False
        for k, item in value.items():
            value[k], hit = _walk(item)
            changed |= hit
        return value, changed
    return value, False


def integral_floats(body: bytes) -> bytes | None:
    """`body` with every float that holds an integer written as that integer; None when there is
    none (or `body` is not JSON: the parser has said what is wrong with it). The app has bounded
    the body's nesting before (codecs/bounds.py), so the walk's recursion is bounded too."""
    try:
        doc = msgspec.json.decode(body)
    except DECODE_ERRORS:
        return None
    doc, changed = _walk(doc)
    return _encode(doc) if changed else None


def parse_lax(parse: Callable[[bytes], T], body: bytes) -> tuple[T, bytes]:
    """`parse(body)`, or on a 400 `parse` of the body with its integral floats as integers. Returns
    the parsed request and the body it came from (what goes upstream from then on)."""
    try:
        return parse(body), body
    except BadRequest:
        fixed = integral_floats(body)
        if fixed is None:
            raise
    return parse(fixed), fixed
