"""The checker (tests/secrets/scan.py) on planted texts: every form a leak takes is found and named,
with its source and line; the documented masked forms are not leaks."""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

from clawdbot.config.dump import MASK
from clawdbot.tenancy.keys import generate, hint
from tests.secrets.scan import PREFIX_CHARS, Checker, Secret, Source, report

MASTER = Secret("sk-plant-master-0123456789abcdef", "master key", "planted")
ODD = Secret("p@ss/w0rd+with space&more", "password", "planted")


def leaks(text: str, *secrets: Secret, binary: bool = False) -> list[tuple[str, str, str]]:
    found = Checker(secrets or (MASTER, ODD)).scan(Source("planted log", text, "t::x", binary))
    return [(leak.where, leak.form, leak.secret.kind) for leak in found]


def test_a_clean_text_has_no_leaks() -> None:
    assert leaks("GET /v1/models 200\nnothing here\n") == []


def test_the_whole_key_and_its_line_are_named() -> None:
    text = "line one\nline two\nkey=" + MASTER.value + " end\n"
    assert leaks(text) == [("line 3", "whole", "master key")]


def test_a_bearer_header_is_named_as_such() -> None:
    assert leaks(f'{{"authorization": "Bearer {MASTER.value}"}}') == [("line 1", "Bearer header", "master key")]
    assert leaks(f"authorization: bearer {MASTER.value}") == [("line 1", "Bearer header", "master key")]


def test_url_encoded_and_json_escaped_forms_are_found() -> None:
    assert leaks(f"GET /x?key={quote(ODD.value, safe='')}") == [("line 1", "URL-encoded", "password")]
    assert leaks(f"a=1&key={quote_plus(ODD.value)}&b=2") == [("line 1", "URL-encoded", "password")]
    slashed = Secret("sk-has/slash\"quote-0123", "upstream key", "planted")
    assert leaks(f'{{"k": {json.dumps(slashed.value)}}}', slashed) == [("line 1", "JSON-escaped", "upstream key")]


def test_a_prefix_of_twelve_or_more_characters_is_a_partial_leak() -> None:
    cut = MASTER.value[:PREFIX_CHARS]
    assert leaks(f"key {cut}... was refused") == [("line 1", f"prefix of 12 of its {len(MASTER.value)} chars",
                                                   "master key")]
    assert leaks(f"key {MASTER.value[:PREFIX_CHARS - 1]}... was refused") == []


def test_the_documented_masked_forms_are_not_leaks() -> None:
    key = generate()
    virtual = Secret(key, "virtual key", "planted")
    shown = hint(key)  # sk-cb-AbCd...wXyZ, as lists, 401 messages and the CLI show a key
    assert shown != key and shown.startswith(key[:10])
    assert leaks(f'{{"hint": "{shown}", "master_key": "{MASK}", "api_key": "***"}}', virtual, MASTER) == []
    assert leaks(f'{{"key": "{key}"}}', virtual) == [("line 1", "whole", "virtual key")]


def test_several_secrets_and_overlapping_occurrences_are_each_reported() -> None:
    other = Secret(MASTER.value + "-and-more", "upstream key", "planted")
    found = leaks(f"{other.value}\n{MASTER.value}", MASTER, other)
    assert ("line 1", "whole", "upstream key") in found and ("line 1", "whole", "master key") in found
    assert ("line 2", "whole", "master key") in found
    assert ("line 2", f"prefix of {len(MASTER.value)} of its {len(other.value)} chars", "upstream key") in found


def test_raw_bytes_are_reported_by_offset() -> None:
    blob = "\x00" * 100 + MASTER.value + "\x00" * 10
    assert leaks(blob, binary=True) == [("offset 100", "whole", "master key")]


def test_short_values_are_not_searched() -> None:
    assert Checker([Secret("unused", "presented credential", "x")]).secrets == {}


def test_the_report_names_source_test_line_and_kind_but_not_the_secret() -> None:
    found = Checker([MASTER]).scan(Source("log of gateway `clawdbot serve`", f"ok\nBearer {MASTER.value}\n", "t::y"))
    text = report(found)
    assert "log of gateway `clawdbot serve` (test t::y), line 2: master key (planted) as Bearer header" in text
    assert MASTER.value not in text and MASTER.value[:PREFIX_CHARS] not in text
