"""GET /admin/api/requests/stream on a real gateway process, with its query fuzzed. Schemathesis
(test_schemathesis.py) cuts each case of this operation to a short `timeout_s`; here every query,
valid or not, is sent as it is: each is a 4xx that says what is wrong (a 400 names the parameter),
or a stream whose first event (the opening comment) the test reads before it hangs up. Never a
5xx, never a hang: every read has a client timeout, and a stream is left after its first event."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.e2e.harness import GatewayProcess, serve_config, until

MASTER = "sk-stream-fuzz-master-0123456789"
PATH = "/admin/api/requests/stream"
TIMEOUT_S = 5.0  # each read: a stream's first event comes at once, an answer sooner
KNOWN = ["key_id", "model", "status", "errors", "min_latency_ms", "timeout_s"]
UNKNOWN = ["bogus", "since", "until", "limit", "cursor", "", "timeout_s[]", "MODEL"]
BAD = ["", "-1", "0", "-0", "1e309", "nan", "NaN", "inf", "-inf", "1e12", "1e13", "86401", "99999999999999999999",
       "true", "yes", "maybe", "null", "[]", "{}", "6xx", "4XX", "099", "1.5", "0x10", " 1", "%", "\x00", "é",
       "a" * 257, "9" * 4000]
GOOD = ["1", "0.5", "2xx", "404", "5XX", "true", "false", "chat", "k1", "10", "86400"]


def config() -> str:
    return """server:
  master_key: ${TEST_MASTER_KEY}
request_log:
  enabled: true
  flush_interval: 0.05
  max_subscribers: 64
services:
  - {name: m, type: mock}
models:
  chat: [m]
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with serve_config(tmp_path_factory.mktemp("stream"), config(), MASTER) as g:
        yield g


def first_event(r: http.client.HTTPResponse) -> bytes:
    """The stream's bytes up to its first blank line (one event), read with the connection's timeout."""
    got = b""
    while b"\n\n" not in got and len(got) < 65536:
        piece = r.read1(4096)
        if not piece:
            break
        got += piece
    return got


def open_stream(gw: GatewayProcess, query: str) -> tuple[int, bytes, str]:
    """(status, the body or the stream's first event, content type); the connection is closed after."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", PATH + ("?" + query if query else ""), headers={"Authorization": f"Bearer {MASTER}"})
        r = conn.getresponse()
        kind = r.headers.get("content-type", "")
        return r.status, first_event(r) if r.status == 200 else r.read(), kind
    finally:
        conn.close()


def check(gw: GatewayProcess, query: str) -> tuple[int, dict[str, object] | bytes]:
    status, body, kind = open_stream(gw, query)
    assert status < 500, (query, status, body[:300])
    if status == 200:
        assert kind.startswith("text/event-stream") and body.startswith(b": request log stream\n\n"), (query, body)
        return status, body
    assert 400 <= status < 500, (query, status)
    err = json.loads(body)["error"]
    assert isinstance(err["message"], str) and err["message"], (query, err)
    if status == 400:
        assert isinstance(err.get("param"), str), (query, err)  # the parameter it is about ("" for `?=`)
    return status, err


queries = st.lists(st.tuples(st.sampled_from(KNOWN) | st.sampled_from(UNKNOWN),
                             st.sampled_from(GOOD) | st.sampled_from(BAD) | st.text(max_size=40)),
                   max_size=4).map(lambda pairs: urlencode(pairs))
raw_queries = st.text(st.sampled_from("=&%;+#?[]abz019 \t/\\"), max_size=60).map(lambda q: quote(q, safe="=&%;+[]/"))


@settings(max_examples=80, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.one_of(queries, raw_queries))
@example("timeout_s=1e309")
@example("min_latency_ms=nan")
@example("errors=true&errors=false&errors=1")
@example("status=4xx&model=" + "m" * 300)
@example("key_id=%FF%FE")
@example("=")
def test_any_query_is_a_clear_4xx_or_a_stream(gw: GatewayProcess, query: str) -> None:
    check(gw, query)


@pytest.mark.parametrize(("name", "value"), [
    ("timeout_s", "0"), ("timeout_s", "-1"), ("timeout_s", "86401"), ("timeout_s", "nan"), ("timeout_s", "x"),
    ("min_latency_ms", "-1"), ("min_latency_ms", "1e13"), ("min_latency_ms", "inf"), ("errors", "maybe"),
    ("status", "6xx"), ("status", "20"), ("key_id", ""), ("model", "m" * 257), ("bogus", "1"), ("limit", "5"),
])
def test_a_bad_value_is_a_400_naming_its_parameter(gw: GatewayProcess, name: str, value: str) -> None:
    status, err = check(gw, urlencode({name: value}))
    assert status == 400 and isinstance(err, dict) and err["param"] == name, err


@pytest.mark.parametrize("query", ["", "timeout_s=86400", "status=2xx&errors=false&min_latency_ms=0",
                                   "model=chat&key_id=k&timeout_s=0.001"])
def test_a_good_query_is_a_stream(gw: GatewayProcess, query: str) -> None:
    assert check(gw, query)[0] == 200


def test_streams_left_after_their_first_event_are_let_go(gw: GatewayProcess) -> None:
    """More streams opened and left than `max_subscribers`: each one left is unsubscribed, so the
    next is served (a 429 would mean the gateway still held the ones the client closed)."""
    for _ in range(80):
        status = until(lambda: open_stream(gw, "")[0] != 429 or None, deadline=5.0)
        assert status, "the streams the client left were still held"
