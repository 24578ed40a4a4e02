"""How a response starts, seen on the wire: a stream answers with its head and first event as soon as
the upstream's first event is in (never held back for the next one), and one whose first event is
late answers once it comes; a HEAD request gets its head and the connection goes on; pipelined
requests are answered in order."""

from __future__ import annotations

import http.client
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.e2e.harness import GatewayProcess, openai_upstreams
from tests.upstreams.openai_server import OpenAIUpstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIUpstream]:
    with openai_upstreams("head") as ups:
        yield ups["head"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    d: Path = tmp_path_factory.mktemp("head")
    cfg = d / "clawdbot.yaml"
    cfg.write_text(f"""
server: {{log_format: text}}
services:
  - name: oa
    type: openai
    endpoint: {upstream.url}/v1
    discover: false
    health_interval: 3600
    timeouts: {{connect: 1, first_byte: 30, total: 60}}
models:
  chat: [oa/mock-a]
""")
    with GatewayProcess(["serve", "--config", str(cfg)], d / "gateway.log") as gw:
        yield gw


def _stream_body(text: str) -> bytes:
    return json.dumps({"model": "chat", "stream": True, "messages": [{"role": "user", "content": text}]}).encode()


def test_a_streams_head_and_first_event_do_not_wait_for_the_next(gateway: GatewayProcess,
                                                                 upstream: OpenAIUpstream) -> None:
    """The gateway reads a stream's first event before it answers (it may still fail over until
    then: pipeline/attempt.py); the head goes out with that event, and neither waits for more."""
    upstream.set_gate(False)
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    try:
        conn.request("POST", "/v1/chat/completions", body=_stream_body("one two three fault:gate"),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()  # the gate is closed: the upstream has sent its first content only
        assert resp.status == 200
        assert resp.getheader("content-type", "").startswith("text/event-stream")
        content = ""
        while not content:  # the upstream's first content event, through before the gate opens
            line = resp.readline()
            assert line, "the stream ended before its first content"
            if line.startswith(b"data: {"):
                choices = json.loads(line[6:])["choices"]
                content = choices[0]["delta"].get("content") or "" if choices else ""
        upstream.set_gate(True)
        rest = resp.read().decode()
    finally:
        conn.close()
        upstream.set_gate(False)
    assert rest.rstrip().endswith("data: [DONE]")
    assert "three" in rest and "one" in content + rest


def test_a_stream_whose_first_event_is_late_answers_once_it_comes(gateway: GatewayProcess,
                                                                  upstream: OpenAIUpstream) -> None:
    upstream.set_gate(False)
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    try:
        conn.request("POST", "/v1/chat/completions", body=_stream_body("four five fault:gate_first"),
                     headers={"Content-Type": "application/json"})
        assert upstream.wait_for(lambda: any("gate_first" in json.dumps(r.body) for r in upstream.requests))
        upstream.set_gate(True)
        resp = conn.getresponse()
        assert resp.status == 200
        text = resp.read().decode()
    finally:
        conn.close()
        upstream.set_gate(False)
    assert "four" in text and text.rstrip().endswith("data: [DONE]")


def test_answers_whole_and_streamed_through_the_openai_package(gateway: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    whole = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "alpha beta"}])
    assert whole.choices[0].message.content == "echo: alpha beta"
    parts = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "gamma delta"}], stream=True) if c.choices]
    assert "".join(parts) == "echo: gamma delta"


def test_a_head_request_gets_its_head_and_the_connection_goes_on(gateway: GatewayProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        conn.request("HEAD", "/healthz")
        resp = conn.getresponse()
        resp.read()
        assert resp.status in (200, 405)
        assert resp.getheader("x-request-id")
        conn.request("GET", "/healthz")  # the same keep-alive connection
        again = conn.getresponse()
        assert again.status == 200 and again.read()
    finally:
        conn.close()


def test_pipelined_requests_are_answered_in_order(gateway: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        # both requests in one write: the second waits for the first's answer
        s.sendall(_whole_request("first answer") + _whole_request("second answer"))
        buf, bodies = b"", []
        while len(bodies) < 2:
            head_end = buf.find(b"\r\n\r\n")
            if head_end >= 0:
                head = buf[:head_end]
                length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
                if len(buf) >= head_end + 4 + length:
                    assert head.startswith(b"HTTP/1.1 200 ")
                    bodies.append(json.loads(buf[head_end + 4:head_end + 4 + length]))
                    buf = buf[head_end + 4 + length:]
                    continue
            part = s.recv(65536)
            assert part, f"closed early: {buf!r}"
            buf += part
    assert [b["choices"][0]["message"]["content"] for b in bodies] == ["echo: first answer", "echo: second answer"]


def _whole_request(text: str) -> bytes:
    body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": text}]}).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
