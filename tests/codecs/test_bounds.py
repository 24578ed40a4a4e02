"""codecs/bounds.py: the JSON shape checks run on raw bytes, so they are compared here with the
depth and size of the decoded value, over strings full of brackets, commas, quotes and escapes."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from clawdbot.codecs.bounds import _outside_strings, check_json_shape
from clawdbot.core.errors import BadRequest

TRICKY = ['[', ']', '{', '}', ',', '"', '\\', '\\"', '"]', '\\\\', '[{,"\\', 'plain', 'é中', '']


def depth(v: Any) -> int:
    if isinstance(v, list):
        return 1 + max((depth(x) for x in v), default=0)
    if isinstance(v, dict):
        return 1 + max((depth(x) for x in v.values()), default=0)
    return 0


def nested(levels: int, leaf: Any = "x") -> Any:
    v = leaf
    for i in range(levels):
        v = [v] if i % 2 else {"k" + TRICKY[i % len(TRICKY)]: v}
    return v


def random_value(rng: random.Random, d: int) -> Any:
    kind = rng.randrange(4 if d > 0 else 2)
    if kind == 0:
        return "".join(rng.choice(TRICKY) for _ in range(rng.randrange(6)))
    if kind == 1:
        return rng.randrange(100)
    if kind == 2:
        return [random_value(rng, d - 1) for _ in range(rng.randrange(4))]
    return {"".join(rng.choice(TRICKY) for _ in range(3)): random_value(rng, d - 1) for _ in range(rng.randrange(4))}


def test_strings_are_removed_exactly() -> None:
    body = json.dumps({"a\"[[[\\": [1, "x\\"], "b": "]]", "c": ["\\\\\"{"]}).encode()
    assert _outside_strings(body) == b'{"": [1, ""], "": "", "": [""]}'


@pytest.mark.parametrize("seed", range(40))
def test_random_documents_agree_with_their_decoded_depth(seed: int) -> None:
    rng = random.Random(seed)
    value = {"pad": [random_value(rng, 6) for _ in range(20)], "deep": nested(rng.randrange(1, 12))}
    body = json.dumps(value, ensure_ascii=rng.random() < 0.5).encode()
    d = depth(value)
    check_json_shape(body, d, 10**6)  # exactly as deep as allowed: accepted
    with pytest.raises(BadRequest) as err:
        check_json_shape(body, d - 1, 10**6)
    assert err.value.code == "json_too_deep"


def test_deep_nesting_is_refused_and_cheap_documents_take_the_fast_path() -> None:
    for levels in (65, 1000, 100_000):
        with pytest.raises(BadRequest) as err:
            check_json_shape(b"[" * levels + b"]" * levels, 64, 10**9)
        assert err.value.code == "json_too_deep"
        with pytest.raises(BadRequest):
            check_json_shape(("[" * levels + "]" * levels), 64, 10**9)  # a WebSocket text frame
    check_json_shape(json.dumps(nested(64)).encode(), 64, 100_000)
    # brackets inside strings are not structure
    check_json_shape(json.dumps({"code": "[" * 5000 + "{" * 5000}).encode(), 64, 100_000)


def test_too_many_values_are_refused_before_decoding() -> None:
    many = b'{"messages":[' + b",".join([b'{"role":"user","content":"x"}'] * 500_000) + b"]}"
    with pytest.raises(BadRequest) as err:
        check_json_shape(many, 64, 100_000)
    assert err.value.code == "too_many_items"
    # commas inside one long prompt are not values
    check_json_shape(json.dumps({"messages": [{"role": "user", "content": "a, " * 400_000}]}).encode(), 64, 100_000)


def test_malformed_json_is_left_to_the_decoder_unless_it_could_nest_deep() -> None:
    check_json_shape(b"[" * 60, 64, 1000)  # unbalanced: the decoder says what is wrong
    check_json_shape(b'{"a": [}' * 8, 64, 1000)
    for body in (b"[" * 5000, b"[" * 5000 + b"[]", b"{" * 3000 + b"]" * 3000):  # unclosed, deep
        with pytest.raises(BadRequest):
            check_json_shape(body, 64, 10**6)
