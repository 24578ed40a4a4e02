"""Strategies the property tests share: any JSON value (huge numbers, odd Unicode, lone surrogates,
wrong types), its bytes in several spellings and nestings far past any bound, mutations of a valid
document, byte-level damage, and the ways a byte string can be cut into chunks."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any, TypeVar

from hypothesis import strategies as st

T = TypeVar("T")
Json = Any

# Strings that have broken parsers before: separators of the framings under test, escapes, what
# JSON, YAML and SSE treat specially, invisible and astral code points, lone surrogates.
ODD_STRINGS = [
    "", " ", "\x00", "\x7f", "\u0085", "\u2028", "\u2029", "\ufeff", "\ufffd", "\U0001f600", "\U0010ffff",
    "\ud800", "\udfff", "\ud83d", "é", "e\u0301", "\\", '"', "\\u0000", "[", "]", "{", "}", ",", ":",
    "data: ", "data:[DONE]", "\n", "\n\n", "\r\n\r\n", "\r", "event: x\n", "${X}", "$${", "null", "true", "0",
    "NaN", "-0", "1e400", "\t", "a" * 300, "<script>", "'", "--", "&a", "*a", "!!binary", "%", "@", "`", "|", ">",
]
# Number literals no Python float or int prints: what a hand-written or hostile body may hold.
NUMBER_LITERALS = [
    "1e400", "-1e400", "1E-400", "-0", "-0.0", "0e0", "0E+0", "123456789012345678901234567890",
    "-99999999999999999999999999", "18446744073709551616", "-9223372036854775809", "9223372036854775807",
    "1.7976931348623157e308", "4.9e-324", "1" + "0" * 400, "0." + "0" * 400 + "1", "1.5e-7", "2e0",
]
INVALID_LITERALS = ["NaN", "Infinity", "-Infinity", "01", "1.", ".5", "+1", "0x10", "1e", "--1", "tru", "nul"]


class Raw(str):
    """JSON text written as it is (a number literal no float prints, a deep nesting, a broken token)."""


any_char = st.characters(exclude_categories=())  # every code point, lone surrogates included
clean_char = st.characters(exclude_categories=["Cs"])  # what UTF-8 can carry
any_text = st.one_of(st.text(any_char, max_size=24), st.sampled_from(ODD_STRINGS))
clean_text = st.one_of(st.text(clean_char, max_size=24),
                       st.sampled_from([s for s in ODD_STRINGS if not any(0xD800 <= ord(c) <= 0xDFFF for c in s)]))
name_text = st.text(clean_char, min_size=1, max_size=16)  # a non-empty, encodable name or id
big_ints = st.integers(min_value=-(2**130), max_value=2**130)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), big_ints, st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(NUMBER_LITERALS).map(Raw), any_text,
)
json_values = st.recursive(
    scalars, lambda kids: st.lists(kids, max_size=6) | st.dictionaries(any_text, kids, max_size=6), max_leaves=30,
)
clean_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                          st.floats(allow_nan=False, allow_infinity=False), clean_text)
clean_values = st.recursive(
    clean_scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(clean_text, kids, max_size=4),
    max_leaves=12,
)


def dumps(value: Json, ascii_only: bool = True, spaced: bool = False) -> str:
    """JSON text of `value`, with Raw leaves written as they are. Not json.dumps: that cannot write a
    literal, and refuses nothing this must write (lone surrogates go out as \\ud800 or as themselves)."""
    item, pair = (", ", ": ") if spaced else (",", ":")
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=ascii_only)
    if isinstance(value, list | tuple):
        return "[" + item.join(dumps(v, ascii_only, spaced) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + item.join(json.dumps(str(k), ensure_ascii=ascii_only) + pair + dumps(v, ascii_only, spaced)
                               for k, v in value.items()) + "}"
    return json.dumps(value)


def to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate as its (invalid) UTF-8 bytes


@st.composite
def deep(draw: st.DrawFn, inner: str = "1") -> Raw:
    """A nesting from a few levels to past the interpreter's recursion limit, of arrays and objects."""
    depth = draw(st.one_of(st.integers(0, 80), st.integers(900, 1500)))
    kinds = draw(st.lists(st.booleans(), min_size=1, max_size=3))
    opens, closes = [], []
    for i in range(depth):
        is_list = kinds[i % len(kinds)]
        opens.append("[" if is_list else '{"k":')
        closes.append("]" if is_list else "}")
    unclosed = draw(st.booleans()) and draw(st.integers(0, 3)) == 0
    return Raw("".join(opens) + inner + ("" if unclosed else "".join(reversed(closes))))


@st.composite
def spelled(draw: st.DrawFn, values: st.SearchStrategy[Json]) -> bytes:
    """One value's JSON bytes: ASCII-escaped or raw UTF-8 (lone surrogates then invalid), compact or
    spaced, sometimes inside a deep nesting or with a broken token spliced in."""
    value = draw(values)
    text = dumps(value, draw(st.booleans()), draw(st.booleans()))
    choice = draw(st.integers(0, 9))
    if choice == 0:
        text = str(draw(deep(text)))
    elif choice == 1 and text:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from([*INVALID_LITERALS, "\x00", " ", "\ufeff"])) + text[at:]
    return to_bytes(text)


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few bytes changed, inserted or removed: truncations, stray quotes, bad UTF-8."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(out)))
        op = draw(st.integers(0, 3))
        if op == 0 and at < len(out):
            out[at] = draw(st.sampled_from(list(b'"\\[]{},:0-e.\xff\xc3\x80 \n')))
        elif op == 1:
            out[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif op == 2:
            del out[at:at + draw(st.integers(1, 8))]
        else:
            del out[at:]
    return bytes(out)


def slots_of(doc: Json) -> list[tuple[Any, Any]]:
    """Every (container, key or index) inside `doc`, to pick one to change."""
    out: list[tuple[Any, Any]] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            out.append((node, k))
            stack.append(v)
    return out


@st.composite
def mutated(draw: st.DrawFn, seeds: st.SearchStrategy[Json], keys: Sequence[str] = ()) -> Json:
    """A valid document (from `seeds`) with up to four of its values replaced (by any JSON value,
    a wrong type, a huge number, a deep nesting), removed, or given a sibling (often a field name
    the dialect knows), so the decoders' later checks are reached, not only the first."""
    doc = copy.deepcopy(draw(seeds))
    replacement = st.one_of(json_values, scalars, deep(), st.sampled_from(NUMBER_LITERALS).map(Raw))
    for _ in range(draw(st.integers(1, 4))):
        slots = slots_of(doc)
        if not slots or draw(st.integers(0, 19)) == 0:
            return draw(replacement)  # the whole document
        node, key = draw(st.sampled_from(slots))
        op = draw(st.integers(0, 4))
        if op <= 1:
            node[key] = draw(replacement)
        elif op == 2:
            del node[key]
        elif op == 3:
            node[key] = [node[key]] if draw(st.booleans()) else {"type": node[key]}
        elif isinstance(node, dict):
            known = bool(keys) and draw(st.booleans())
            name: str = draw(st.sampled_from(keys)) if known else draw(any_text)
            node[name] = draw(replacement)
        else:
            node.insert(key, draw(replacement))
    return doc


def bodies(seeds: st.SearchStrategy[Json], keys: Sequence[str] = ()) -> st.SearchStrategy[bytes]:
    """What a client or an upstream might send where `seeds` is expected: the valid documents, the
    same mutated, damaged bytes, any JSON at all, and any bytes."""
    return st.one_of(
        spelled(seeds),
        spelled(mutated(seeds, keys)),
        spelled(mutated(seeds, keys)),
        spelled(seeds).flatmap(damaged),
        spelled(json_values),
        st.binary(max_size=64),
    )


@st.composite
def cuts(draw: st.DrawFn, data: bytes, most: int = 24) -> list[bytes]:
    """`data` cut at random offsets into non-empty pieces (a transport never hands over b"")."""
    points = sorted(draw(st.sets(st.integers(1, max(1, len(data) - 1)), max_size=most))) if len(data) > 1 else []
    return [data[a:b] for a, b in pairwise([0, *points, len(data)]) if b > a]


def every_cut(data: bytes) -> list[list[bytes]]:
    """`data` cut in two at every byte boundary (and whole, and one byte at a time)."""
    return [[data]] + [[data[:i], data[i:]] for i in range(1, len(data))] + [[data[i:i + 1] for i in range(len(data))]]


def only(allowed: type[BaseException] | tuple[type[BaseException], ...], fn: Callable[..., T], *args: Any) -> T | None:
    """fn(*args), or None when it raised one of `allowed`; anything else raises (and fails the test)."""
    try:
        return fn(*args)
    except allowed:
        return None
