"""Upstream timing through a real gateway process: the idle gap is enforced after a model server
sent its headers at once and its first token later (prefill), `first_byte` covers the headers and
the first body bytes, and a short Retry-After is waited out and retried every time."""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Iterator

import openai
import pytest

from tests.e2e.conftest import MASTER_KEY
from tests.e2e.harness import GatewayProcess
from tests.upstreams.openai_server import OpenAIUpstream

STALL = "a b c d fault:prefill=300 fault:stall=10000"  # headers, 0.3 s, one event, 10 s of silence


@pytest.fixture(scope="module")
def up() -> Iterator[OpenAIUpstream]:
    with OpenAIUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, up: OpenAIUpstream) -> Iterator[GatewayProcess]:
    d = tmp_path_factory.mktemp("timing")
    off = "breaker: {enabled: false}"
    cfg = d / "clawdbot.yaml"
    cfg.write_text(f"""
server: {{master_key: "${{TEST_MASTER_KEY}}", log_format: json}}
services:
  - {{name: idle, type: openai, endpoint: "{up.base_url}", discover: false, {off},
      timeouts: {{connect: 1, first_byte: 30, idle: 0.5, total: 60}}}}
  - {{name: no_idle, type: openai, endpoint: "{up.base_url}", discover: false, {off},
      timeouts: {{connect: 1, first_byte: 0.5, idle: null, total: 60}}}}
  - {{name: limited, type: openai, endpoint: "{up.base_url}", discover: false}}
models:
  stalling: [idle/mock-a]
  prefilling: [no_idle/mock-a]
  throttled: {{targets: [limited/mock-a], retries: 1}}
""")
    with GatewayProcess(["serve", "--config", str(cfg)], d / "gateway.log", {"TEST_MASTER_KEY": MASTER_KEY}) as g:
        yield g


@pytest.fixture()
def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=30)


# UUIDs: the upstream sees the client's id only when it is one (a fresh UUID otherwise)
IDLE_STREAM, IDLE_WHOLE = str(uuid.uuid4()), str(uuid.uuid4())


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_idle_gap_after_the_first_chunk_ends_a_stream_with_an_error(client: openai.OpenAI,
                                                                    up: OpenAIUpstream) -> None:
    got = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(model="stalling", stream=True, messages=user(STALL),
                                                    extra_headers={"X-Request-ID": IDLE_STREAM}):
            got.append(chunk)
    assert got, "the first event arrived before the silence"
    assert "idle timeout" in info.value.message  # an error event, not [DONE] after the 10 s stall
    assert up.wait_for_disconnect(IDLE_STREAM)  # the gateway hung up on the silent upstream


def test_idle_gap_in_a_non_stream_body_is_a_504(client: openai.OpenAI, up: OpenAIUpstream) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="stalling", messages=user(STALL),
                                       extra_headers={"X-Request-ID": IDLE_WHOLE})
    assert info.value.status_code == 504 and "idle timeout" in info.value.message
    assert up.wait_for_disconnect(IDLE_WHOLE)


@pytest.mark.parametrize("stream", [False, True])
def test_first_byte_covers_the_first_body_bytes_even_without_an_idle_limit(client: openai.OpenAI,
                                                                          up: OpenAIUpstream, stream: bool) -> None:
    rid = str(uuid.uuid4())
    with pytest.raises(openai.APIStatusError) as info:  # headers came at once, the first token 3 s later
        out = client.chat.completions.create(model="prefilling", stream=stream, messages=user("x fault:prefill=3000"),
                                             extra_headers={"X-Request-ID": rid})
        if stream:
            list(out)  # type: ignore[arg-type]
    assert info.value.status_code == 504 and "first-byte timeout" in info.value.message
    assert up.wait_for_disconnect(rid)


def test_a_short_retry_after_is_waited_out_and_retried_every_time(gw: GatewayProcess, up: OpenAIUpstream) -> None:
    """The wait for a Retry-After of 0.2 s may end a millisecond early (the event loop's clock); the
    service must not still count as throttled then."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    body = json.dumps({"model": "throttled", "messages": user("hi fault:throttle=200")}).encode()
    try:
        for i in range(40):
            rid = str(uuid.uuid4())
            conn.request("POST", "/v1/chat/completions", body=body, headers={
                "Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json", "X-Request-ID": rid})
            resp = conn.getresponse()
            data = resp.read()
            attempts = resp.getheader("X-Clawdbot-Attempts", "")
            assert resp.status == 200, (i, attempts, data[:300])
            first, second = attempts.split(", ")
            assert first.startswith("limited/mock-a;status=429") and second.startswith("limited/mock-a;status=200")
            assert [r.request_id for r in up.requests[-2:]] == [rid, rid]
    finally:
        conn.close()
