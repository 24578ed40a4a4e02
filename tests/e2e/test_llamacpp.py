"""clawdbot in front of the real llama.cpp OpenAI-compatible server (llama-cpp-python's
`python -m llama_cpp.server`, tests/upstreams/llama_server.py), driven by the openai package.

That server validates X-Request-ID as a UUID, answers errors in OpenAI's shape, ignores
`max_completion_tokens` and `stream_options`, and writes its JSON with spaces after the separators:
each of those once broke requests through the gateway (issue 9). Generation is kept to a few
tokens; the 270M model on one thread writes ~30 tokens a second."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.e2e.harness import GatewayProcess
from tests.e2e.test_tenancy import MASTER, call, create_key
from tests.upstreams.llama_server import LlamaServer

# temperature 0: this prompt makes the model write until the context is full, unless stopped
LONG: list[Any] = [{"role": "user", "content": "Write a long story about a dog."}]
SHORT: list[Any] = [{"role": "user", "content": "Say hello"}]
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
PER_TOKEN = 1_000_000.0  # USD per million tokens: $1 a token


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, llama_server: LlamaServer) -> Iterator[GatewayProcess]:
    d = tmp_path_factory.mktemp("llamacpp")
    cfg = d / "clawdbot.yaml"
    cfg.write_text(f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
  log_format: json
services:
  - name: llama
    type: openai
    endpoint: {llama_server.base_url}
    timeouts: {{connect: 2, first_byte: 60, total: 120}}
  # the same server, configured as if it honoured max_completion_tokens (it ignores it): only the
  # gateway's own cut bounds the output
  - name: llama_mct
    type: openai
    endpoint: {llama_server.base_url}
    max_tokens_field: max_completion_tokens
    timeouts: {{connect: 2, first_byte: 60, total: 120}}
costs:
  gemma: {{input: {PER_TOKEN}, output: {PER_TOKEN}}}
  gemma-ignoring: {{input: {PER_TOKEN}, output: {PER_TOKEN}}}
models:
  gemma: [llama/{LlamaServer.MODEL}]
  gemma-ignoring: [llama_mct/{LlamaServer.MODEL}]
""")
    with GatewayProcess(["serve", "--config", str(cfg)], d / "gateway.log", {"TEST_MASTER_KEY": MASTER}) as g:
        yield g


def client(gw: GatewayProcess, key: str = MASTER, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=retries, timeout=120)


def access(gw: GatewayProcess, rid: str) -> dict[str, Any]:
    """The access-log line of request `rid` (waits for it: the line is written after the answer)."""
    gw.wait_for_log(f'"request_id":"{rid}","event":"access"', timeout=20)
    return next(json.loads(x) for x in gw.log().splitlines() if f'"request_id":"{rid}","event":"access"' in x)


def content_events(stream: Any) -> tuple[list[Any], list[Any]]:
    """(chunks with content, every chunk) of a streamed answer."""
    chunks = list(stream)
    return [c for c in chunks if c.choices and c.choices[0].delta.content], chunks


def test_chat_and_embeddings_pass_through(gw: GatewayProcess) -> None:
    # The server refuses a request id that is not a UUID with an empty 400; the gateway's ids are UUIDs.
    raw = client(gw).chat.completions.with_raw_response.create(model="gemma", messages=SHORT, max_tokens=4)
    r = raw.parse()
    assert r.usage is not None and 0 < r.usage.completion_tokens <= 4
    assert UUID_RE.fullmatch(raw.headers["x-request-id"])
    stream = client(gw).chat.completions.create(model="gemma", messages=SHORT, max_tokens=4, stream=True)
    with_content, _ = content_events(stream)
    assert 0 < len(with_content) <= 4
    emb = client(gw).embeddings.create(model="gemma", input=["hello", "world"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == len(emb.data[1].embedding) > 100


def test_a_client_request_id_that_is_not_a_uuid_goes_upstream_as_a_fresh_uuid(gw: GatewayProcess) -> None:
    raw = client(gw).chat.completions.with_raw_response.create(
        model="gemma", messages=SHORT, max_tokens=2, extra_headers={"X-Request-ID": "trace-abc.123_x"})
    assert raw.headers["x-request-id"] == "trace-abc.123_x"  # the client's id for its own logs
    line = access(gw, "trace-abc.123_x")
    assert line["status"] == 200 and UUID_RE.fullmatch(line["upstream_request_id"])


def test_a_prompt_over_the_context_window_is_the_upstreams_400(gw: GatewayProcess, llama_server: LlamaServer) -> None:
    before = llama_server.requests_seen()
    rid = str(uuid.uuid4())
    with pytest.raises(openai.BadRequestError) as err:  # the SDK would retry a 502 twice
        client(gw, retries=2).chat.completions.create(
            model="gemma", messages=[{"role": "user", "content": "word " * 700}], max_tokens=5,
            extra_headers={"X-Request-ID": rid})
    e = err.value
    assert e.status_code == 400 and e.code == "context_length_exceeded" and e.type == "invalid_request_error"
    assert e.param == "messages" and "maximum context length is 512 tokens" in e.message
    assert e.response.headers["x-clawdbot-attempts"].count("status=400") == 1
    line = access(gw, rid)
    assert line["status"] == 400 and line["upstream_status"] == 400
    assert sum(f'"request_id":"{rid}","event":"access"' in x for x in gw.log().splitlines()) == 1
    assert llama_server.requests_seen() == before + 1  # one request upstream: no retry, no failover


@pytest.mark.parametrize("model", ["gemma", "gemma-ignoring"])
def test_max_completion_tokens_bounds_the_answer(gw: GatewayProcess, model: str) -> None:
    # gemma: sent as max_tokens, which the server honours; gemma-ignoring: the server ignores the
    # limit, so the gateway cuts the stream itself after 5 content events.
    stream = client(gw).chat.completions.create(
        model=model, messages=LONG, max_completion_tokens=5, temperature=0, stream=True,
        stream_options={"include_usage": True})
    with_content, chunks = content_events(stream)
    assert len(with_content) == 5
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    if model == "gemma":
        r = client(gw).chat.completions.create(model=model, messages=LONG, max_completion_tokens=5, temperature=0)
        assert r.usage is not None and r.usage.completion_tokens == 5 and r.choices[0].finish_reason == "length"


def test_a_budget_bounds_a_non_stream_answer_the_upstream_does_not_limit(gw: GatewayProcess) -> None:
    # A key with a budget: the reservation counted 5 completion tokens. The first answer from a
    # server that ignores the limit it was sent is over it (charged in full, the service noted);
    # from then on the gateway collects its budgeted answers from streams it cuts at 5.
    made = create_key(gw, name="bounded", budget_usd=1000, budget_period="total")
    c = client(gw, made["key"])
    first = c.chat.completions.with_raw_response.create(
        model="gemma-ignoring", messages=LONG, max_completion_tokens=5, temperature=0)
    over = first.parse()
    assert over.usage is not None and over.usage.completion_tokens > 5
    assert access(gw, first.headers["x-request-id"])["completion_tokens"] == over.usage.completion_tokens
    gw.wait_for_log("service llama_mct answered")
    raw = c.chat.completions.with_raw_response.create(
        model="gemma-ignoring", messages=LONG, max_completion_tokens=5, temperature=0)
    r = raw.parse()
    assert r.choices[0].finish_reason == "length" and r.choices[0].message.content
    assert r.usage is not None and r.usage.completion_tokens == 5
    line = access(gw, raw.headers["x-request-id"])
    assert line["status"] == 200 and line["completion_tokens"] == 5


def test_streams_without_usage_are_counted_logged_and_charged(gw: GatewayProcess, llama_server: LlamaServer) -> None:
    # The server ignores stream_options: the gateway counts one token per content event and
    # estimates the prompt (docs/limits.md), for the budget, the TPM window, the spend and the log.
    # The previous test's cut stream may still be generating there; a request meeting it came back
    # empty under load (the server's interrupt_requests), so it is let finish first.
    llama_server.settle()
    made = create_key(gw, name="counted", budget_usd=1000, budget_period="total", tpm=100000)
    raw = client(gw, made["key"]).chat.completions.with_raw_response.create(
        model="gemma", messages=SHORT, max_tokens=4, temperature=0, stream=True)
    with_content, _ = content_events(raw.parse())
    line = access(gw, raw.headers["x-request-id"])
    assert line["status"] == 200 and line["tokens_estimated"] is True
    assert line["completion_tokens"] == len(with_content) > 0
    assert line["prompt_tokens"] > 0
    assert line["ttft_ms"] is not None and 0 < line["ttft_ms"] <= line["latency_ms"]
    deadline = time.monotonic() + 10
    while True:  # spend records reach the table in batches
        status, out = call(gw, "GET", f"/admin/api/spend?group_by=key&key_id={made['id']}")
        assert status == 200, out
        if out["total"]["requests"] == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    total = out["total"]
    assert total["requests"] == 1
    assert total["completion_tokens"] == line["completion_tokens"]
    assert total["prompt_tokens"] == line["prompt_tokens"]
    assert total["cost_usd"] == pytest.approx(line["prompt_tokens"] + line["completion_tokens"])
