"""Slow clients (slowloris) are bounded in time (api/protocol.py): a request head must arrive within
`server.head_timeout` of its first byte, a connection that says nothing is closed as late, and a
body may not pause longer than `server.body_timeout`; else 408 and the connection closes. A body
that keeps coming, however slowly, is served. Real gateway process, raw sockets."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import GatewayProcess
from tests.upstreams.openai_server import OpenAIUpstream

BODY = json.dumps({"model": "m", "max_tokens": 2, "messages": [{"role": "user", "content": "hello"}]}).encode()
HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def upstream(openai_upstream: OpenAIUpstream) -> OpenAIUpstream:
    return openai_upstream  # the session's (tests/e2e/conftest.py): counted before and after, not from zero


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    d = tmp_path_factory.mktemp("slow")
    cfg = d / "clawdbot.yaml"
    cfg.write_text("server: {head_timeout: 1, body_timeout: 1}\nservices:\n  - {name: m, type: mock}\n"
                   f"  - {{name: oa, type: openai, endpoint: {upstream.url}/v1}}\n"
                   "models:\n  m: [m/x]\n  slow: [oa/mock-a]\n")
    with GatewayProcess(["serve", "--config", str(cfg)], d / "gateway.log") as gw:
        yield gw


def connect(gw: GatewayProcess) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", gw.port))
    s.settimeout(15)  # far beyond the 1 s limits: a gateway that never closes fails here
    return s


def until_closed(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(4096):
        out += chunk
    s.close()
    return out


def error_of(answer: bytes) -> tuple[int, dict[str, str]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)["error"]


def served(gw: GatewayProcess) -> bool:
    s = connect(gw)
    s.sendall(HEAD + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY) + BODY)
    return until_closed(s).startswith(b"HTTP/1.1 200 ")


def test_a_connection_that_says_nothing_is_closed(gw: GatewayProcess) -> None:
    assert until_closed(connect(gw)) == b""  # nothing was asked: nothing is answered


def test_a_head_that_does_not_arrive_in_time_is_a_408(gw: GatewayProcess) -> None:
    s = connect(gw)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    status, err = error_of(until_closed(s))
    assert status == 408 and err["code"] == "request_timeout" and "head did not arrive within 1 s" in err["message"]


def test_a_body_that_stops_is_a_408_and_logged_as_one(gw: GatewayProcess) -> None:
    s = connect(gw)
    s.sendall(HEAD + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY[:10])
    status, err = error_of(until_closed(s))
    assert status == 408 and "body paused for more than 1 s" in err["message"]
    gw.wait_for_log('status=408 stream=False')
    assert served(gw)  # and the gateway goes on serving


def test_a_slow_body_that_keeps_coming_is_served(gw: GatewayProcess) -> None:
    s = connect(gw)
    s.sendall(HEAD + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY))
    started = time.monotonic()
    for i in range(0, len(BODY), 8):  # ~10 pieces, 0.3 s apart: 3 s in all, each pause under the 1 s
        s.sendall(BODY[i:i + 8])
        time.sleep(0.3)  # the client's pace (the scenario), not a wait for the gateway
    assert until_closed(s).startswith(b"HTTP/1.1 200 ")
    assert time.monotonic() - started > 2.0  # longer than either limit: only the pauses count


def test_a_kept_alive_connections_next_head_has_its_own_deadline(gw: GatewayProcess) -> None:
    s = connect(gw)
    s.sendall(HEAD + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY)
    got = b""
    while b"\r\n\r\n" not in got:  # the first answer: its head, then its body by content-length
        got += s.recv(65536)
    head, _, body = got.partition(b"\r\n\r\n")
    length = int(next(v for k, _, v in (h.partition(b": ") for h in head.split(b"\r\n")) if k == b"content-length"))
    while len(body) < length:
        body += s.recv(65536)
    assert head.startswith(b"HTTP/1.1 200 ") and len(body) == length
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the next request's head, never finished
    status, err = error_of(until_closed(s))
    assert status == 408 and err["code"] == "request_timeout"


def test_a_pipelined_head_waits_for_the_answer_before_it_without_a_timeout(gw: GatewayProcess) -> None:
    """The next request's head, sent while a 3 s stream is still answered: the gateway does not read
    it meanwhile, so that wait is not the client's; its own 1 s starts after the stream."""
    ask = {"model": "slow", "stream": True, "max_tokens": 8,
           "messages": [{"role": "user", "content": "fault:slow=600 fault:chunks=5 one two three"}]}
    body = json.dumps(ask).encode()
    s = connect(gw)
    s.sendall(HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    got = s.recv(65536)
    while b"data: " not in got:  # the stream is under way (its chunks come 0.6 s apart) ...
        got += s.recv(65536)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # ... when the next head begins, and stops
    got += until_closed(s)
    stream, _, after = got.partition(b"data: [DONE]")
    assert after, got[-300:]  # the stream ended whole, nothing cut into it
    assert stream.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 408" not in stream
    status, err = error_of(after[after.find(b"HTTP/1.1 "):])
    assert status == 408 and err["code"] == "request_timeout"


def test_the_limits_must_be_positive(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("server: {head_timeout: 0}\nservices:\n  - {name: m, type: mock}\n")
    code, out = GatewayProcess(["serve", "--config", str(cfg)], tmp_path / "c.log").run_to_exit()
    assert code != 0 and "head_timeout" in out
