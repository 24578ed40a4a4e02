"""The completion cap a budget reserved holds whatever the upstream does: a real gateway process
whose `metering.default_max_tokens` is 4, keys with a budget, and upstreams asked for 10 content
chunks (`fault:chunks=10`) with no max_tokens sent: the gateway cuts the answer at 4 output events,
streamed (fast path and canonical path) and not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.e2e.harness import GatewayProcess
from tests.e2e.test_tenancy import MASTER, create_key
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream

TEN = [{"role": "user", "content": "fault:chunks=10"}]
OLLAMA_LONG = [{"role": "user", "content": "one two three four five six seven eight nine ten"}]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, openai_upstream: OpenAIUpstream,
       ollama_upstream: OllamaTestServer) -> Iterator[GatewayProcess]:
    d = tmp_path_factory.mktemp("cap")
    cfg = d / "clawdbot.yaml"
    cfg.write_text(f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
  log_format: json
metering:
  default_max_tokens: 4
services:
  - name: oa
    type: openai
    endpoint: {openai_upstream.url}/v1
  - name: ol
    type: ollama
    endpoint: {ollama_upstream.url}
costs:
  chat-oa: {{input: 1.0, output: 1.0}}
  chat-ol: {{input: 1.0, output: 1.0}}
models:
  chat-oa: [oa/mock-a]
  chat-ol: [ol/llama3.2:latest]
""")
    with GatewayProcess(["serve", "--config", str(cfg)], d / "gateway.log", {"TEST_MASTER_KEY": MASTER}) as g:
        yield g


@pytest.fixture(scope="module")
def budgeted(gw: GatewayProcess) -> openai.OpenAI:
    key = create_key(gw, name="capped", budget_usd=100, budget_period="total")["key"]
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=20)


def access(gw: GatewayProcess, rid: str) -> dict[str, Any]:
    needle = f'"request_id":"{rid}","event":"access"'
    gw.wait_for_log(needle)
    return dict(next(json.loads(x) for x in gw.log().splitlines() if needle in x))


@pytest.mark.parametrize(("model", "messages"), [("chat-oa", TEN), ("chat-ol", OLLAMA_LONG)])
def test_a_stream_is_cut_at_the_reserved_cap(gw: GatewayProcess, budgeted: openai.OpenAI, model: str,
                                             messages: list[Any]) -> None:
    raw = budgeted.chat.completions.with_raw_response.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True})
    chunks = list(raw.parse())
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) == 4
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    line = access(gw, raw.headers["x-request-id"])
    assert line["status"] == 200 and line["completion_tokens"] == 4 and line["tokens_estimated"] is True


@pytest.mark.parametrize(("model", "messages"), [("chat-oa", TEN), ("chat-ol", OLLAMA_LONG)])
def test_a_non_stream_answer_is_cut_at_the_reserved_cap(gw: GatewayProcess, budgeted: openai.OpenAI, model: str,
                                                        messages: list[Any]) -> None:
    raw = budgeted.chat.completions.with_raw_response.create(model=model, messages=messages)
    r = raw.parse()
    assert r.choices[0].finish_reason == "length" and r.usage is not None and r.usage.completion_tokens == 4
    words = "fault:chunks=10 w2 w3" if model == "chat-oa" else "one two three"
    assert r.choices[0].message.content == f"echo: {words}"  # four output events
    assert raw.headers["x-clawdbot-service"] == model.removeprefix("chat-")
    assert access(gw, raw.headers["x-request-id"])["completion_tokens"] == 4


def test_without_a_budget_nothing_is_cut(gw: GatewayProcess) -> None:
    master = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=20)
    stream = master.chat.completions.create(model="chat-oa", messages=TEN, stream=True)
    assert sum(1 for c in stream if c.choices and c.choices[0].delta.content) == 10
    r = master.chat.completions.create(model="chat-oa", messages=TEN)
    assert r.usage is not None and r.usage.completion_tokens == 10 and r.choices[0].finish_reason == "stop"
