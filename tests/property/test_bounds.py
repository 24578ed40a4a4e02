"""codecs/bounds.py: check_json_shape agrees with a model of the JSON it reads (nesting depth, values
in arrays and objects) for any value in any spelling, whatever its strings hold, and on text as
on bytes; on any bytes at all it answers None or a BadRequest naming which bound."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from clawdbot.codecs.bounds import check_json_shape
from clawdbot.core.errors import BadRequest
from tests.property.strategies import Raw, any_text, dumps, json_values, scalars, to_bytes

CODES = {"too_many_items", "json_too_deep"}


def shape(value: Any) -> tuple[int, int]:
    """(deepest nesting, values in arrays and objects, an empty one counting as one): the model."""
    deepest = items = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Raw) or not isinstance(node, list | dict):
            continue
        deepest = max(deepest, depth)
        children = list(node.values()) if isinstance(node, dict) else node
        items += max(len(children), 1)
        stack.extend((c, depth + 1) for c in children)
    return deepest, items


def outcome(body: bytes | str, depth: int, items: int) -> str | None:
    try:
        check_json_shape(body, depth, items)
    except BadRequest as exc:
        assert exc.status == 400 and exc.code in CODES, exc.code
        return exc.code
    return None


@st.composite
def nested(draw: st.DrawFn) -> Any:
    """A value inside up to 120 levels of arrays and objects (deeper than any bound drawn here)."""
    value = draw(json_values)
    for _ in range(draw(st.integers(0, 120))):
        value = [value] if draw(st.booleans()) else {draw(any_text): value}
    return value


limits = st.tuples(st.integers(1, 100), st.integers(1, 300))


@given(st.one_of(json_values, nested()), limits, st.booleans(), st.booleans())
@example([[[]]], (2, 100), True, False)  # one level too deep
@example(["[[[[", "{{,,,", '\\"[', "\\\\"], (1, 100), True, False)  # brackets, commas, escapes in strings
@example({"a": [1, 2, 3]}, (10, 3), True, True)  # 4 values: {} holds 1, [] holds 3
def test_the_shape_is_measured_exactly(value: Any, bounds: tuple[int, int], ascii_only: bool, spaced: bool) -> None:
    max_depth, max_items = bounds
    depth, items = shape(value)
    expected = "too_many_items" if items > max_items else "json_too_deep" if depth > max_depth else None
    text = dumps(value, ascii_only, spaced)
    assert outcome(to_bytes(text), max_depth, max_items) == expected
    assert outcome(text, max_depth, max_items) == expected  # a WebSocket text frame: the same answer


@given(st.one_of(st.binary(max_size=300), st.text(max_size=300), st.lists(st.sampled_from(
    [b"[", b"]", b"{", b"}", b",", b'"', b"\\", b"1", b":", b"\xff"]), max_size=300).map(b"".join)), limits)
@example(b"[" * 5000, (64, 100_000))  # never closed: as deep as it is long
@example(b'"\\' * 50, (1, 1))  # escapes that end in the middle of a string
def test_any_bytes_pass_or_name_the_bound(body: bytes | str, bounds: tuple[int, int]) -> None:
    outcome(body, *bounds)


@given(scalars, limits)
def test_a_scalar_never_exceeds_a_bound(value: Any, bounds: tuple[int, int]) -> None:
    assert outcome(to_bytes(dumps(value)), *bounds) is None
