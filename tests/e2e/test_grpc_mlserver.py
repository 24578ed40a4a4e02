"""clawdbot in front of a real Seldon MLServer (1.7.1, tests/upstreams/grpc_peers.py) over the Open
Inference Protocol's gRPC API, driven by the openai package: MLServer's bare stream responses,
request parameters for settings, its statuses for a model that is not ready, a server killed
mid-stream, deadlines, and a real GGUF model (SmolLM2) served by MLServer.

The deterministic models answer the prompt's words, " word" after the first, at most max_tokens;
with `chat_template: raw` the prompt is the user's message, so the answer is its words."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.harness import GatewayProcess, http_call, serve_config
from tests.upstreams.grpc_peers import MLServerPeer

MASTER = "sk-grpc-mlserver-master-0123456789"
SAY = [{"role": "user", "content": "hello there general kenobi"}]


def config(target: str) -> str:
    def svc(name: str, model: str, template: str = "raw", timeouts: str = "{connect: 2, first_byte: 10, total: 60}",
            ) -> str:
        return (f"  - name: {name}\n    type: grpc\n    endpoint: {target}\n    metadata: {{model_id: {model}}}\n"
                f"    grpc: {{preset: mlserver, chat_template: {template}}}\n    timeouts: {timeouts}\n"
                f"    breaker: {{enabled: false}}\n")
    return ("server:\n  master_key: ${TEST_MASTER_KEY}\n  log_format: json\nservices:\n"
            + svc("mls", "echo")
            + svc("mls_chatml", "echo", template="chatml")
            + svc("mls_slow", "slow", timeouts="{connect: 2, first_byte: 2, total: 60, idle: 0.3}")
            + svc("mls_slow_unary", "slow", timeouts="{connect: 2, first_byte: 1, total: 60}")
            + svc("mls_nr", "notready")
            + svc("mls_smol", "smollm", template="chatml", timeouts="{connect: 2, first_byte: 60, total: 120}")
            + "models:\n  echo: [mls/echo]\n  echo-chatml: [mls_chatml/echo]\n  slow: [mls_slow/slow]\n"
            "  slow-unary: [mls_slow_unary/slow]\n  notready: [mls_nr/notready]\n"
            "  notready-then-echo: [mls_nr/notready, mls/echo]\n  smol: [mls_smol/smollm]\n")


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLServerPeer]:
    with MLServerPeer(tmp_path_factory.mktemp("mlserver")) as p:
        yield p


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, peer: MLServerPeer) -> Iterator[GatewayProcess]:
    with serve_config(tmp_path_factory.mktemp("gw-mlserver"), config(peer.target), MASTER) as g:
        yield g


@pytest.fixture(scope="module")
def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=60)


def stream_text(client: openai.OpenAI, **kw: Any) -> tuple[list[str], str | None, Any]:
    parts, finish, usage = [], None, None
    for c in client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw):
        if c.usage is not None:
            usage = c.usage
        for ch in c.choices:
            if ch.delta.content:
                parts.append(ch.delta.content)
            finish = ch.finish_reason or finish
    return parts, finish, usage


def test_one_answer(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="echo", messages=SAY)  # type: ignore[arg-type]
    assert r.choices[0].message.content == "hello there general kenobi"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (4, 4)
    assert r.model == "echo"


def test_a_stream_token_by_token(client: openai.OpenAI) -> None:
    parts, finish, usage = stream_text(client, model="echo", messages=SAY)
    assert parts == ["hello", " there", " general", " kenobi"]
    assert finish == "stop"
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (4, 4)


@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_reaches_the_model(client: openai.OpenAI, stream: bool) -> None:
    if stream:
        parts, finish, usage = stream_text(client, model="echo", messages=SAY, max_tokens=2)
        text = "".join(parts)
    else:
        r = client.chat.completions.create(model="echo", messages=SAY, max_tokens=2)  # type: ignore[arg-type]
        text, finish, usage = r.choices[0].message.content, r.choices[0].finish_reason, r.usage
    assert text == "hello there" and finish == "length"
    assert usage is not None and usage.completion_tokens == 2


@pytest.mark.parametrize("stream", [False, True])
def test_stop_strings_are_enforced_by_the_gateway(client: openai.OpenAI, stream: bool) -> None:
    # the deterministic runtime ignores `stop`: the cut is the gateway's
    if stream:
        parts, finish, _ = stream_text(client, model="echo", messages=SAY, stop=["gene"])
        text = "".join(parts)
    else:
        r = client.chat.completions.create(model="echo", messages=SAY, stop=["gene"])  # type: ignore[arg-type]
        text, finish = r.choices[0].message.content, r.choices[0].finish_reason
    assert text == "hello there " and finish == "stop"


def test_the_chat_template_renders_the_prompt_and_its_end_of_turn_stops(client: openai.OpenAI) -> None:
    # ChatML: "<|im_start|>user\nhello there general kenobi<|im_end|>\n<|im_start|>assistant\n", echoed
    # word by word until the end-of-turn marker, where the gateway stops the answer
    parts, finish, _ = stream_text(client, model="echo-chatml", messages=SAY)
    assert "".join(parts) == "<|im_start|>user hello there general kenobi"
    assert finish == "stop"


def test_a_model_that_is_not_ready_fails_clearly_and_falls_back(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="notready", messages=SAY)  # type: ignore[arg-type]
    assert info.value.status_code == 503
    assert "'mls_nr' cannot run the model now" in info.value.message and "not ready" in info.value.message
    r = client.chat.completions.create(model="notready-then-echo", messages=SAY)  # type: ignore[arg-type]
    assert r.choices[0].message.content == "hello there general kenobi"


def test_health_checks_read_model_readiness(gw: GatewayProcess) -> None:
    deadline = time.monotonic() + 30  # the first active check runs at start-up; poll until it has
    services: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _status, body = http_call(gw, "GET", "/readyz", headers={"Authorization": f"Bearer {MASTER}"})
        services = json.loads(body).get("services", {})
        if "mls_nr" in services and services["mls_nr"].get("reachable") is not None:
            break
        time.sleep(0.2)
    assert services["mls"]["reachable"] is True
    assert services["mls_nr"]["reachable"] is False and "not ready" in str(services["mls_nr"])


def test_the_idle_deadline_ends_a_slow_stream(client: openai.OpenAI) -> None:
    got = []
    started = time.monotonic()
    with pytest.raises(openai.APIError) as info:
        for c in client.chat.completions.create(model="slow", stream=True, messages=SAY):  # type: ignore[arg-type]
            got.append(c)
    assert got, "the first word came before the silence"
    assert "timeouts.idle" in info.value.message and time.monotonic() - started < 10


def test_the_first_byte_deadline_bounds_a_slow_answer(client: openai.OpenAI) -> None:
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="slow-unary", messages=SAY)  # type: ignore[arg-type]
    assert info.value.status_code == 504 and time.monotonic() - started < 10


def test_a_real_gguf_model_served_by_mlserver(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="smol", max_tokens=8, temperature=0,
                                       messages=[{"role": "user", "content": "What is the capital of France?"}])
    text = r.choices[0].message.content or ""
    assert text.strip() and "<|im_end|>" not in text
    assert r.usage is not None and r.usage.prompt_tokens > 5 and 0 < r.usage.completion_tokens <= 8
    parts, _finish, usage = stream_text(client, model="smol", max_tokens=8, temperature=0,
                                       messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert "".join(parts) == text  # greedy: the same words, streamed
    assert usage is not None and usage.completion_tokens == r.usage.completion_tokens


def test_models_are_listed(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"echo", "slow", "smol"} <= ids


def test_a_server_killed_mid_stream_ends_the_stream_with_an_error(tmp_path: Path) -> None:
    with MLServerPeer(tmp_path) as peer, \
            serve_config(tmp_path, config(peer.target).replace("idle: 0.3", "idle: 30"), MASTER) as gw:
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=60)
        got = []
        with pytest.raises(openai.APIError) as info:
            for chunk in c.chat.completions.create(model="slow", stream=True, messages=SAY):  # type: ignore[arg-type]
                got.append(chunk)
                if len(got) == 2:
                    peer.kill()
        assert len(got) >= 2
        assert "mls_slow" in info.value.message
        # the gateway is fine: the next request to a dead server is a clean 503
        with pytest.raises(openai.APIStatusError) as down:
            c.chat.completions.create(model="echo", messages=SAY)  # type: ignore[arg-type]
        assert down.value.status_code == 503
