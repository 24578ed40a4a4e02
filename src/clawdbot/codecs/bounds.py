"""Bounds on the shape of a client's JSON, checked on the raw bytes before anything decodes them.

A 15 MB body of 500,000 tiny messages costs ~190 MB once decoded, and JSON nested 1,000 deep makes
the decoder (and anything that walks the result) raise RecursionError. Both are refused here, on
bytes, in C-speed passes (`count`, `replace`, `split`, `translate`, one regex).

The common request never leaves the fast path: with at most `depth` brackets in the whole body it
can be neither deeper nor have more containers than that, and its comma count bounds its items.
Only a body past those counts is looked at closely, with string contents removed first (a prompt
full of code has brackets and commas that are not JSON structure)."""

from __future__ import annotations

import re

from clawdbot.core.errors import BadRequest

_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_LEAF = re.compile(rb"\[\]|\{\}")  # an innermost, empty container once everything else is gone


def check_json_shape(body: bytes | str, max_depth: int, max_items: int) -> None:
    """Raise BadRequest when `body` nests deeper than `max_depth` or holds more than `max_items`
    values in arrays and objects. Malformed JSON passes: the decoder names what is wrong with it."""
    if isinstance(body, str):  # a WebSocket text frame
        brackets = body.count("[") + body.count("{")
        if brackets <= max_depth and brackets + body.count(",") <= max_items:
            return
        body = body.encode("utf-8", "surrogatepass")
    brackets = body.count(b"[") + body.count(b"{")
    if brackets <= max_depth and brackets + body.count(b",") <= max_items:
        return
    bare = _outside_strings(body) if b'"' in body else body
    items = bare.count(b",") + bare.count(b"[") + bare.count(b"{")
    if items > max_items:
        raise BadRequest(f"The JSON body holds more than {max_items} values in arrays and objects.",
                         code="too_many_items")
    shape = bare.translate(None, _NOT_BRACKET)
    # Each pass removes every innermost pair, so it lowers the deepest nesting by exactly one.
    for _ in range(max_depth):
        if not shape:
            return
        nxt = _LEAF.sub(b"", shape)
        if len(nxt) == len(shape):
            break  # unbalanced or mismatched brackets: not JSON
        shape = nxt
    # Left over: containers deeper than max_depth, or brackets that do not pair up. A few of the
    # latter are the decoder's to report; many could still be nested (an unclosed `[[[[...`).
    if shape and (_LEAF.search(shape) or len(shape) > max_depth):
        raise BadRequest(f"The JSON body is nested deeper than {max_depth} levels (or its brackets do not pair up).",
                         code="json_too_deep")


def _outside_strings(body: bytes) -> bytes:
    """`body` without the contents of its JSON strings. Escaped backslashes go first, so every
    quote left once `\\"` is gone delimits a string: every other piece between quotes is outside one."""
    clean = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    return b'""'.join(clean.split(b'"')[::2])
