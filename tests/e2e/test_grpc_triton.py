"""clawdbot in front of a Triton-shaped gRPC server (tests/peers/triton_server.py, built on Triton's
published proto through tritonclient): the wrapped ModelStreamInfer shape with `error_message`, the
empty final response, tensors for settings, TLS on a test CA, a key sent as gRPC metadata, and the
seed's example configuration (a grpc service and an http service) serving completions end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.harness import GatewayProcess, serve_config
from tests.upstreams.grpc_peers import TritonPeer
from tests.upstreams.openai_server import OpenAIUpstream

MASTER = "sk-grpc-triton-master-0123456789"
KEY = "triton-key-0123456789abcdef"
SAY = [{"role": "user", "content": "hello there general kenobi"}]
TIMEOUTS = "{connect: 2, first_byte: 10, total: 30}"


def svc(name: str, endpoint: str, model: str = "ensemble", extra: str = "") -> str:
    return (f"  - name: {name}\n    type: grpc\n    endpoint: {endpoint}\n    metadata: {{model_id: {model}}}\n"
            f"    grpc: {{chat_template: raw}}\n    timeouts: {TIMEOUTS}\n    breaker: {{enabled: false}}\n{extra}")


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonPeer]:
    with TritonPeer(tmp_path_factory.mktemp("triton"), tls=True, require_key=KEY) as p:
        yield p


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, triton: TritonPeer) -> Iterator[GatewayProcess]:
    tls = f"    tls: {{ca_bundle: {triton.ca_path}}}\n"
    auth = f"    auth: {{type: api_key, key: {KEY}}}\n"
    config = ("server:\n  master_key: ${TEST_MASTER_KEY}\nservices:\n"
              + svc("tri", f"grpcs://localhost:{triton.port}", extra=tls + auth)
              + svc("tri_nokey", f"grpcs://localhost:{triton.port}", extra=tls)
              + svc("tri_untrusted", f"grpcs://localhost:{triton.port}", extra=auth)
              + svc("tri_nr", f"grpcs://localhost:{triton.port}", model="notready", extra=tls + auth)
              + "models:\n  tri: [tri/ensemble]\n  nokey: [tri_nokey/ensemble]\n"
              "  untrusted: [tri_untrusted/ensemble]\n  notready: [tri_nr/notready]\n"
              "  notready-then-tri: [tri_nr/notready, tri/ensemble]\n")
    with serve_config(tmp_path_factory.mktemp("gw-triton"), config, MASTER) as g:
        yield g


@pytest.fixture(scope="module")
def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=60)


def stream(client: openai.OpenAI, **kw: Any) -> tuple[list[str], str | None, Any]:
    parts, finish, usage = [], None, None
    for c in client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw):
        usage = c.usage or usage
        for ch in c.choices:
            if ch.delta.content:
                parts.append(ch.delta.content)
            finish = ch.finish_reason or finish
    return parts, finish, usage


def test_wrapped_stream_over_tls_with_a_key(client: openai.OpenAI) -> None:
    parts, finish, usage = stream(client, model="tri", messages=SAY)
    assert parts == ["hello", " there", " general", " kenobi"] and finish == "stop"
    # the counts ride on the last response with text, before Triton's empty final one
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (4, 4)


def test_one_answer_from_raw_output_contents(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="tri", messages=SAY, max_tokens=3)  # type: ignore[arg-type]
    assert r.choices[0].message.content == "hello there general"
    assert r.choices[0].finish_reason == "length"


def test_max_tokens_goes_as_a_tensor(client: openai.OpenAI) -> None:
    parts, finish, usage = stream(client, model="tri", messages=SAY, max_tokens=1)
    assert parts == ["hello"] and finish == "length" and usage.completion_tokens == 1


def test_an_error_message_mid_stream_ends_it_with_an_error_event(client: openai.OpenAI) -> None:
    got = []
    with pytest.raises(openai.APIError) as info:
        for c in client.chat.completions.create(model="tri", stream=True,  # type: ignore[call-overload]
                                                messages=[{"role": "user", "content": "one FAIL three"}]):
            got.append(c)
    assert [c.choices[0].delta.content for c in got if c.choices and c.choices[0].delta.content] == ["one"]
    assert "service 'tri' failed the request" in info.value.message and "asked for a failure" in info.value.message


def test_unary_failure_is_a_502(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="tri", messages=[{"role": "user", "content": "FAIL"}])
    assert info.value.status_code == 502 and "gRPC INTERNAL" in info.value.message


def test_a_missing_key_is_the_services_problem_not_the_callers(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="nokey", messages=SAY)  # type: ignore[arg-type]
    assert info.value.status_code == 502 and "UNAUTHENTICATED" in info.value.message
    assert KEY not in info.value.message


def test_a_server_certificate_from_an_unknown_ca_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="untrusted", messages=SAY)  # type: ignore[arg-type]
    assert info.value.status_code == 503 and "tri_untrusted" in info.value.message


@pytest.mark.parametrize("stream_it", [False, True])
def test_a_model_that_is_not_ready(client: openai.OpenAI, stream_it: bool) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        r = client.chat.completions.create(model="notready", messages=SAY, stream=stream_it)  # type: ignore[call-overload]
        list(r) if stream_it else None
    assert info.value.status_code in (502, 503) and "tri_nr" in info.value.message
    parts, _, _ = stream(client, model="notready-then-tri", messages=SAY)
    assert "".join(parts) == "hello there general kenobi"


def test_the_seeds_example_serves_completions(tmp_path: Path, openai_upstream: OpenAIUpstream) -> None:
    """The seed's two services as written (a grpc service by host:port with a model_id, an http
    service with an api_key from the environment), only the addresses pointed at this machine."""
    with TritonPeer(tmp_path, aliases=("llama-3-7b",)) as peer:
        config = f"""server:
  master_key: ${{TEST_MASTER_KEY}}
services:
  - name: text_generator_v1
    type: grpc
    endpoint: "127.0.0.1:{peer.port}"
    metadata:
      model_id: "llama-3-7b"
  - name: text_generator_v2
    type: http
    endpoint: "{openai_upstream.url}/v1"
    auth:
      type: api_key
      key: "${{ENV_MODEL_API_KEY}}"
"""
        gw = serve_config(tmp_path, config, MASTER)
        gw.env["ENV_MODEL_API_KEY"] = "sk-upstream-seed-0123456789"
        with gw:
            c = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=60)
            r = c.chat.completions.create(model="llama-3-7b", messages=SAY)  # type: ignore[arg-type]
            # the default template (ChatML) and its end-of-turn stop, over Triton's conventions
            assert r.choices[0].message.content == "<|im_start|>user hello there general kenobi"
            parts, _, _ = stream(c, model="text_generator_v1", messages=SAY)
            assert "".join(parts) == r.choices[0].message.content
            r2 = c.chat.completions.create(model="text_generator_v2", messages=SAY)  # type: ignore[arg-type]
            assert r2.choices[0].message.content


def test_mutual_tls_with_a_client_certificate(tmp_path: Path) -> None:
    with TritonPeer(tmp_path, tls=True, mtls=True) as peer:
        ca, cert = peer.ca_path, peer.client_path
        with_cert = f"    tls: {{ca_bundle: {ca}, client_cert: {cert}}}\n"
        config = ("server:\n  master_key: ${TEST_MASTER_KEY}\nservices:\n"
                  + svc("mtls", f"grpcs://localhost:{peer.port}", extra=with_cert)
                  + svc("no_cert", f"grpcs://localhost:{peer.port}", extra=f"    tls: {{ca_bundle: {ca}}}\n")
                  + "models:\n  mtls: [mtls/ensemble]\n  no-cert: [no_cert/ensemble]\n")
        with serve_config(tmp_path, config, MASTER) as gw:
            c = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=60)
            parts, _, _ = stream(c, model="mtls", messages=SAY)
            assert "".join(parts) == "hello there general kenobi"
            with pytest.raises(openai.APIStatusError) as info:
                c.chat.completions.create(model="no-cert", messages=SAY)  # type: ignore[arg-type]
            assert info.value.status_code == 503 and "no_cert" in info.value.message
