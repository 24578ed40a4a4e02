"""Bounds on the shape of a client's JSON, checked on the raw bytes before anything decodes them.

A 15 MB body of 500,000 tiny messages costs ~190 MB once decoded, and JSON nested 1,000 deep makes
the decoder (and anything that walks the result) raise RecursionError. Both are refused here, on
bytes, in C-speed passes: `bytes.count`, one regex substitution and `bytes.translate`.

The common request never leaves the fast path: with at most `depth` brackets in the whole body it
can be neither deeper nor have more containers than that, and its comma count bounds its items.
Only a body past those counts is looked at closely, with string contents removed first (a prompt
full of code has brackets and commas that are not JSON structure)."""

from __future__ import annotations

import re

from clawdbot.core.errors import BadRequest

# A JSON string: quote, then runs of plain characters and escapes (the unrolled form does not backtrack).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_LEAF = re.compile(rb"\[\]|\{\}")  # an innermost, empty container once everything else is gone


def check_json_shape(body: bytes, max_depth: int, max_items: int) -> None:
    """Raise BadRequest when `body` nests deeper than `max_depth` or holds more than `max_items`
    values in arrays and objects. Malformed JSON passes: the decoder names what is wrong with it."""
    brackets = body.count(b"[") + body.count(b"{")
    if brackets <= max_depth and brackets + body.count(b",") <= max_items:
        return
    bare = _STRING.sub(b'""', body) if b'"' in body else body
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
            return  # unbalanced or mismatched brackets: not JSON, the decoder says so
        shape = nxt
    if shape and _LEAF.search(shape):
        raise BadRequest(f"The JSON body is nested deeper than {max_depth} levels.", code="json_too_deep")
