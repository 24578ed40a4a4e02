"""The checks /openapi.json is written from, each as the document states it: query structs
(api/http.py decode_query), integers written as floats (api/integral.py), patterns that mean
the same to msgspec (Python) and to JSON Schema (ECMA-262), and the bounds of api/request_bounds.py."""

from __future__ import annotations

import jsonschema_rs
import msgspec
import pytest

from clawdbot.api import admin_queries as aq
from clawdbot.api.admin_bodies import ImportedKey, KeyCreate, exact
from clawdbot.api.http import decode_query, query_params
from clawdbot.api.integral import integral_floats, parse_lax
from clawdbot.api.request_bounds import MAX_DIMENSIONS, MAX_OUTPUT_TOKENS, check_dimensions, check_output_limit
from clawdbot.codecs import openai
from clawdbot.core.errors import BadRequest


def refused(q: dict[str, str], kind: type[msgspec.Struct]) -> BadRequest:
    with pytest.raises(BadRequest) as err:
        decode_query(q, kind)
    return err.value


def test_a_query_is_its_struct() -> None:
    assert decode_query({"limit": "7", "offset": "0"}, aq.PageQuery) == aq.PageQuery(limit=7, offset=0)
    assert decode_query({}, aq.PageQuery) == aq.PageQuery()
    for q, param in (({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"offset": "-1"}, "offset"),
                     ({"offset": "9" * 5000}, "offset"), ({"limit": "²"}, "limit"), ({"limit": ""}, "limit"),
                     ({"offest": "1"}, "offest")):
        err = refused(q, aq.PageQuery)
        assert err.param == param and err.code == "invalid_query" and repr(param) in err.message, q


def test_an_empty_value_is_a_value() -> None:
    assert query_params({"query_string": b"limit=&a=1&a=2"}) == {"limit": "", "a": "2"}


def test_request_log_filters() -> None:
    q = aq.request_query(decode_query({"status": "4xx", "since": "2026-03-01", "until": "2026-03-01T12:00:00+01:00",
                                       "cursor": "1780000000000.42"}, aq.RequestsQuery))
    assert q.status_class == 4 and q.since == 1_772_323_200_000 and q.until == 1_772_362_800_000
    assert q.cursor == (1_780_000_000_000, 42) and aq.encode_cursor(q.cursor) == "1780000000000.42"
    for bad in ({"status": "404\n"}, {"status": "600"}, {"cursor": "1.2.3"}, {"since": "2026-13-01"},
                {"since": "3", "until": "2"}):
        with pytest.raises(BadRequest):
            aq.request_query(decode_query(bad, aq.RequestsQuery))


def test_patterns_mean_the_same_in_both_engines() -> None:
    """Python's `$` also matches before a final newline; exact() makes msgspec (Python) agree with
    JSON Schema (ECMA-262) on a key with one."""
    good, bad = "sk-cb-" + "a" * 32, "sk-cb-" + "a" * 32 + "\n"
    schema = jsonschema_rs.validator_for({"type": "string", "pattern": exact("sk-cb-[A-Za-z0-9_-]{32,128}")})
    assert schema.is_valid(good) and not schema.is_valid(bad)
    kind = msgspec.defstruct("Imported", [("key", ImportedKey)])
    msgspec.convert({"key": good}, kind)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"key": bad}, kind)
    assert jsonschema_rs.validator_for({"type": "string", "pattern": aq.MS_PATTERN}).is_valid("123")


def test_integral_floats_are_integers() -> None:
    assert integral_floats(b'{"a": 5.0, "b": [1e3, 2.5], "c": "5.0"}') == b'{"a":5,"b":[1000,2.5],"c":"5.0"}'
    assert integral_floats(b'{"a": 5, "b": 2.5}') is None and integral_floats(b"not json") is None
    body = b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 16.0}'
    (_, req), used = parse_lax(openai.parse_chat_request, body)
    assert req.max_tokens == 16 and msgspec.json.decode(used)["max_tokens"] == 16
    with pytest.raises(BadRequest):  # 16.5 stays a float, and a float is no max_tokens
        parse_lax(openai.parse_chat_request, body.replace(b"16.0", b"16.5"))
    with pytest.raises(BadRequest):  # nothing to retry with: the first error stands
        parse_lax(openai.parse_chat_request, b'{"model": "m"}')


def test_output_limits_and_dimensions() -> None:
    check_output_limit(None, "max_tokens")
    check_output_limit(MAX_OUTPUT_TOKENS, "max_tokens")
    check_dimensions(MAX_DIMENSIONS)
    for bad in (0, MAX_OUTPUT_TOKENS + 1):
        with pytest.raises(BadRequest) as err:
            check_output_limit(bad, "max_output_tokens")
        assert err.value.param == "max_output_tokens"
    with pytest.raises(BadRequest):
        check_dimensions(MAX_DIMENSIONS + 1)


def test_key_create_bounds_are_on_the_struct() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"expires_in": 1e308}', type=KeyCreate)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"expires_at": 1000000000000000000000}', type=KeyCreate)
