"""Ollama's native API inbound, driven by the official `ollama` package against a real gateway
process: chat and generate (whole and streamed NDJSON) routed to an OpenAI-compatible service and to
an Ollama one, tool calls arriving whole, the model list, show, ps, version, embeddings, a virtual
key, and errors in Ollama's shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import ollama
import pytest

from tests.e2e.harness import GatewayProcess, http_call, serve_config
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream

MASTER = "sk-test-ollama-inbound-0123456789"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, openai_upstream: OpenAIUpstream,
       ollama_upstream: OllamaTestServer) -> Iterator[GatewayProcess]:
    with serve_config(tmp_path_factory.mktemp("ollama-inbound"), f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
  log_format: json
services:
  - name: oa
    type: openai
    endpoint: {openai_upstream.url}/v1
  - name: ol
    type: ollama
    endpoint: {ollama_upstream.url}
costs:
  via-openai: {{input: 1.0, output: 2.0}}
models:
  via-openai: [oa/mock-a]
  via-ollama: [ol/llama3.2:latest]
  embedder: [oa/text-embedding-3-small]
""", MASTER) as g:
        yield g


def client(gw: GatewayProcess, key: str = MASTER) -> ollama.Client:
    return ollama.Client(host=gw.url, headers={"Authorization": f"Bearer {key}"}, timeout=20)


def raw(gw: GatewayProcess, method: str, path: str, body: Any = None, key: str | None = MASTER,
        ctype: str | None = None) -> tuple[int, bytes]:
    """No Content-Type unless asked, as `curl -d` sends Ollama's API."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    if ctype:
        headers["content-type"] = ctype
    return http_call(gw, method, path, body, headers)


@pytest.mark.parametrize("model", ["via-openai", "via-ollama"])
def test_chat_whole_and_streamed(gw: GatewayProcess, model: str) -> None:
    c = client(gw)
    r = c.chat(model=model, messages=[{"role": "user", "content": "hello there"}], stream=False)
    assert r.message.role == "assistant" and r.message.content == "echo: hello there"
    assert r.done and r.done_reason == "stop" and r.model == model and (r.eval_count or 0) > 0
    parts = list(c.chat(model=model, messages=[{"role": "user", "content": "one two three"}], stream=True))
    assert "".join(p.message.content or "" for p in parts) == "echo: one two three"
    assert len(parts) > 2 and parts[-1].done and not any(p.done for p in parts[:-1])
    assert parts[-1].done_reason == "stop" and (parts[-1].eval_count or 0) > 0


def test_generate_whole_and_streamed(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    c = client(gw)
    r = c.generate(model="via-openai", prompt="Say hi", system="terse", stream=False)
    assert r.response == "echo: Say hi" and r.done
    sent = openai_upstream.last_request
    assert sent is not None and sent.body["messages"][0] == {"role": "system", "content": "terse"}
    parts = list(c.generate(model="via-openai", prompt="a b c", stream=True, options={"num_predict": 2}))
    assert "".join(p.response for p in parts) == "echo: a" and parts[-1].done_reason == "length"


def test_tool_calls_arrive_whole(gw: GatewayProcess) -> None:
    tools: Any = [{"type": "function", "function": {"name": "lookup", "description": "d",
                                                    "parameters": {"type": "object", "properties": {}}}}]
    parts = list(client(gw).chat(model="via-openai", tools=tools, stream=True,
                                 messages=[{"role": "user", "content": "call:lookup now"}]))
    calls = [tc for p in parts for tc in (p.message.tool_calls or [])]
    assert len(calls) == 1 and calls[0].function.name == "lookup" and calls[0].function.arguments == {"x": 1}


def test_models_show_ps_version_and_embeddings(gw: GatewayProcess) -> None:
    c = client(gw)
    names = {m.model for m in c.list().models}
    assert {"via-openai", "via-ollama", "embedder"} <= names
    assert {m.model for m in c.ps().models} == names
    assert c.show("via-ollama").capabilities == ["completion", "tools"]  # its service takes tools
    with pytest.raises(ollama.ResponseError) as missing:
        c.show("nobody-serves-this")
    assert missing.value.status_code == 404 and "nobody-serves-this" in missing.value.error
    status, body = raw(gw, "GET", "/api/version", key=None)
    assert status == 200 and json.loads(body)["version"]
    e = c.embed(model="embedder", input=["a", "b"])
    assert len(e.embeddings) == 2 and len(e.embeddings[0]) > 0
    status, body = raw(gw, "POST", "/api/embeddings", {"model": "embedder", "prompt": "a"})
    assert status == 200 and len(json.loads(body)["embedding"]) == len(e.embeddings[0])


def test_errors_in_ollamas_shape(gw: GatewayProcess) -> None:
    status, body = raw(gw, "POST", "/api/chat", {"model": "via-openai", "messages": []}, key="sk-wrong")
    assert status == 401 and set(json.loads(body)) == {"error"}
    status, body = raw(gw, "POST", "/api/generate", {"model": "via-openai", "prompt": "x", "raw": True})
    assert status == 400 and "raw" in json.loads(body)["error"]
    status, body = raw(gw, "POST", "/api/chat", {"model": "via-openai", "options": {"temperature": "hot"},
                                                 "messages": [{"role": "user", "content": "x"}]})
    assert status == 400 and "options.temperature" in json.loads(body)["error"]


def test_a_virtual_keys_limits_apply(gw: GatewayProcess) -> None:
    status, made = raw(gw, "POST", "/admin/api/keys", {"name": "ollama-app", "rpm": 1},
                       ctype="application/json")
    assert status in (200, 201), made
    key = json.loads(made)["key"]
    r = client(gw, key).chat(model="via-openai", messages=[{"role": "user", "content": "hi"}], stream=False)
    assert r.done
    with pytest.raises(ollama.ResponseError) as limited:  # the minute's one request is used
        client(gw, key).chat(model="via-openai", messages=[{"role": "user", "content": "again"}], stream=False)
    assert limited.value.status_code == 429 and limited.value.error


def test_bad_input_is_refused_in_ollamas_shape(gw: GatewayProcess) -> None:
    nested: Any = "x"
    for _ in range(100):  # deeper than server.max_json_depth (64)
        nested = {"a": nested}
    for body in ({"model": "via-openai", "messages": [{"role": "user", "content": "x"}], "options": nested},
                 {"model": "via-openai", "messages": "hello"},
                 {"model": 7, "prompt": "x"}):
        status, data = raw(gw, "POST", "/api/chat", body)
        assert status == 400 and set(json.loads(data)) == {"error"}, data
    status, data = raw(gw, "POST", "/api/generate", {"model": "via-openai", "prompt": "x" * (17 * 1024 * 1024)})
    assert status == 413 and set(json.loads(data)) == {"error"}
