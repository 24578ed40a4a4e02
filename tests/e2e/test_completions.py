"""OpenAI's legacy text completions (POST /v1/completions) through a real gateway, with the `openai`
package: whole and streamed text, the default limit of 16, usage in a stream, and the fields that
need a raw text model refused by name."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.e2e.harness import GatewayProcess, serve_config
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream

MASTER = "sk-test-completions-0123456789"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, openai_upstream: OpenAIUpstream,
       ollama_upstream: OllamaTestServer) -> Iterator[GatewayProcess]:
    with serve_config(tmp_path_factory.mktemp("completions"), f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
services:
  - name: oa
    type: openai
    endpoint: {openai_upstream.url}/v1
  - name: ol
    type: ollama
    endpoint: {ollama_upstream.url}
models:
  text: [oa/mock-a]
  text-ol: [ol/llama3.2:latest]
""", MASTER) as g:
        yield g


def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=20)


@pytest.mark.parametrize("model", ["text", "text-ol"])
def test_whole_and_streamed(gw: GatewayProcess, model: str, openai_upstream: OpenAIUpstream) -> None:
    r = client(gw).completions.create(model=model, prompt="Say hello", max_tokens=20)
    assert r.object == "text_completion" and r.choices[0].text == "echo: Say hello"
    assert r.choices[0].finish_reason == "stop" and r.usage is not None and r.usage.completion_tokens > 0
    parts = list(client(gw).completions.create(model=model, prompt="one two", max_tokens=20, stream=True,
                                               stream_options={"include_usage": True}))
    assert "".join(p.choices[0].text for p in parts if p.choices) == "echo: one two"
    assert parts[-1].usage is not None and parts[-1].usage.completion_tokens > 0


def test_the_default_limit_is_16(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    r = client(gw).completions.create(model="text", prompt=" ".join(["w"] * 40))
    assert r.choices[0].finish_reason == "length"
    sent = openai_upstream.last_request
    assert sent is not None and sent.body["max_tokens"] == 16


@pytest.mark.parametrize(("field", "value"), [("echo", True), ("suffix", "end"), ("logprobs", 2), ("best_of", 2),
                                               ("n", 2)])
def test_what_needs_a_raw_text_model_is_refused_by_name(gw: GatewayProcess, field: str, value: object) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client(gw).completions.create(model="text", prompt="x", extra_body={field: value})
    assert err.value.body["param"] == field  # type: ignore[index]
