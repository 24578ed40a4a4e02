from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.e2e.harness import GatewayProcess, closed_port
from tests.upstreams.llama_server import LlamaServer
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream as OpenAITestServer

MASTER_KEY = "sk-test-master-0123456789"


@pytest.fixture(scope="session")
def openai_upstream() -> Iterator[OpenAITestServer]:
    with OpenAITestServer() as server:
        yield server


@pytest.fixture(scope="session")
def ollama_upstream() -> Iterator[OllamaTestServer]:
    with OllamaTestServer() as server:
        yield server


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """The real llama.cpp OpenAI-compatible server (llama-cpp-python), started once per session."""
    with LlamaServer(tmp_path_factory.mktemp("llama")) as server:
        yield server


def gateway_config(openai_url: str, ollama_url: str) -> str:
    return f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
  max_body_bytes: 65536
  log_format: json
services:
  - name: oa
    type: openai
    endpoint: {openai_url}/v1
    timeouts: {{connect: 1, first_byte: 2, total: 8}}
    breaker: {{enabled: false}}  # the fault-injection tests fail it on purpose, over and over
  - name: ol
    type: ollama
    endpoint: {ollama_url}
    metadata: {{num_ctx: 4096}}
    timeouts: {{connect: 1, first_byte: 2, total: 8}}
    breaker: {{enabled: false}}
  - name: oa_short
    type: openai
    endpoint: {openai_url}/v1
    timeouts: {{connect: 1, first_byte: 2, total: 1.5}}
    breaker: {{enabled: false}}
  - name: dead
    type: openai
    endpoint: http://127.0.0.1:{closed_port()}
    timeouts: {{connect: 1, first_byte: 1, total: 2}}
  - name: future
    type: grpc
    endpoint: 127.0.0.1:{closed_port()}
    metadata: {{model_id: llama-3-7b}}
models:
  chat-oa: [oa/mock-a]
  chat-short: [oa_short/mock-a]
  chat-ol: [ol/llama3.2:latest]
  dead-model: [dead/x]
  failover: [dead/x, oa/mock-a]
"""


@pytest.fixture(scope="session")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, openai_upstream: OpenAITestServer, ollama_upstream: OllamaTestServer
) -> Iterator[GatewayProcess]:
    d = tmp_path_factory.mktemp("gw")
    cfg = d / "clawdbot.yaml"
    cfg.write_text(gateway_config(openai_upstream.url, ollama_upstream.url))
    with GatewayProcess(["serve", "--config", str(cfg)], d / "gateway.log", {"TEST_MASTER_KEY": MASTER_KEY}) as gw:
        yield gw


@pytest.fixture()
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)


def artifacts_dir() -> Path:
    d = Path(__file__).resolve().parents[2] / "test-artifacts"
    d.mkdir(exist_ok=True)
    return d
