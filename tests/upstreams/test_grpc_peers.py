"""The gRPC test peers start, are ready and answer as documented (tests/upstreams/grpc_peers.py), before
any gateway test relies on them. Each call goes through tests/peers/oip_call.py in the peer venv."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.upstreams.grpc_peers import PEER_PYTHON, MLServerPeer, TritonPeer

pytestmark = pytest.mark.skipif(not PEER_PYTHON.exists(), reason="no peer venv: bash scripts/ensure-peers.sh")

PROMPT = "the quick  brown\nfox jumps"


def params(resp: dict[str, Any]) -> dict[str, Any]:
    """A response's parameters as plain values (protobuf JSON writes int64 as a string)."""
    out: dict[str, Any] = {}
    for key, value in resp.get("parameters", {}).items():
        ((kind, v),) = value.items()
        out[key] = int(v) if kind == "int64_param" else v
    return out


def ml_spec(rpc: str, model: str, prompt: str = PROMPT, **parameters: dict[str, Any]) -> dict[str, Any]:
    return {"rpc": rpc, "model": model, "parameters": parameters,
            "inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [1], "data": [prompt]}]}


def triton_spec(rpc: str, prompt: str = PROMPT, max_tokens: int = 16, stream: bool = True,
                **parameters: dict[str, Any]) -> dict[str, Any]:
    return {"rpc": rpc, "model": "ensemble", "wrapped": True, "raw": True, "parameters": parameters, "inputs": [
        {"name": "text_input", "datatype": "BYTES", "shape": [1, 1], "data": [prompt]},
        {"name": "max_tokens", "datatype": "INT32", "shape": [1, 1], "data": [max_tokens]},
        {"name": "stream", "datatype": "BOOL", "shape": [1, 1], "data": [stream]},
    ]}


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLServerPeer]:
    with MLServerPeer(tmp_path_factory.mktemp("mlserver")) as peer:
        yield peer


def test_mlserver_streams_the_prompt_words(mlserver: MLServerPeer) -> None:
    got = mlserver.call(ml_spec("ModelStreamInfer", "echo"))
    assert got["code"] == "OK"
    assert [r["texts"] for r in got["responses"]] == [["the"], [" quick"], [" brown"], [" fox"], [" jumps"]]
    assert [params(r) for r in got["responses"][:-1]] == [{}] * 4
    assert params(got["responses"][-1]) == {"prompt_tokens": 5, "completion_tokens": 5, "finish_reason": "stop"}
    assert "raw_output_contents" not in got["responses"][0]  # contents.bytes_contents, as the request was sent


def test_mlserver_unary_honours_max_tokens(mlserver: MLServerPeer) -> None:
    got = mlserver.call(ml_spec("ModelInfer", "echo", max_tokens={"int64_param": 3}))
    (resp,) = got["responses"]
    assert resp["texts"] == ["the quick brown"]
    assert params(resp) == {"prompt_tokens": 5, "completion_tokens": 3, "finish_reason": "length"}


def test_mlserver_notready_is_listed_but_refused(mlserver: MLServerPeer) -> None:
    assert not mlserver.model_ready("notready") and mlserver.model_ready("echo")
    index = mlserver.call({"rpc": "RepositoryIndex"})["responses"][0]["models"]
    assert {m["name"] for m in index} == set(MLServerPeer.MODELS)
    got = mlserver.call(ml_spec("ModelStreamInfer", "notready"))
    assert (got["code"], got["details"]) == ("INVALID_ARGUMENT", "Model notready with version  is not ready yet.")


def test_mlserver_fail_mid_stream(mlserver: MLServerPeer) -> None:
    got = mlserver.call(ml_spec("ModelStreamInfer", "echo", prompt="one FAIL three"))
    assert [r["texts"] for r in got["responses"]] == [["one"]]
    assert got["code"] == "INTERNAL"


def test_mlserver_smollm_generates(mlserver: MLServerPeer) -> None:
    prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    got = mlserver.call(ml_spec("ModelStreamInfer", "smollm", prompt=prompt, max_tokens={"int64_param": 5}))
    assert got["code"] == "OK", got
    text = "".join(t for r in got["responses"] for t in r["texts"])
    last = params(got["responses"][-1])
    assert text.strip() and last["finish_reason"] in ("stop", "length")
    assert last["prompt_tokens"] > 10 and 0 < last["completion_tokens"] <= 5


def test_triton_streams_wrapped_raw_outputs(tmp_path: Path) -> None:
    with TritonPeer(tmp_path) as peer:
        got = peer.call(triton_spec("ModelStreamInfer", max_tokens=2))
        assert got["code"] == "OK"
        assert [r["texts"] for r in got["responses"]] == [["the"], [" quick"]]
        inner = [r["infer_response"] for r in got["responses"]]
        assert all("raw_output_contents" in i and "contents" not in i["outputs"][0] for i in inner)
        assert params(inner[-1]) == {"prompt_tokens": 5, "completion_tokens": 2, "finish_reason": "length"}

        got = peer.call(triton_spec("ModelStreamInfer", triton_enable_empty_final_response={"bool_param": True}))
        finals = [params(r["infer_response"])["triton_final_response"] for r in got["responses"]]
        assert finals == [False] * 5 + [True] and got["responses"][-1]["texts"] == []

        got = peer.call(triton_spec("ModelStreamInfer", prompt="one FAIL three"))
        assert got["code"] == "OK"
        assert [r["texts"] for r in got["responses"]] == [["one"], []]
        assert got["responses"][1]["error_message"]

        assert not peer.model_ready("notready") and peer.model_ready("ensemble")
        got = peer.call({**triton_spec("ModelInfer"), "model": "notready"})
        assert got["code"] == "UNAVAILABLE"


def test_triton_tls_and_bearer_key(tmp_path: Path) -> None:
    with TritonPeer(tmp_path, tls=True, require_key="sekrit") as peer:
        assert peer.ca_path is not None and peer.ca_path.exists()
        got = peer.call(triton_spec("ModelInfer"))
        assert got["code"] == "OK" and got["responses"][0]["texts"] == ["the quick brown fox jumps"]
        peer.key = "wrong"
        assert peer.call(triton_spec("ModelInfer"))["code"] == "UNAUTHENTICATED"


def test_triton_killed_mid_stream(tmp_path: Path) -> None:
    with TritonPeer(tmp_path, delay=0.3) as peer:
        result: dict[str, Any] = {}
        caller = threading.Thread(target=lambda: result.update(peer.call(triton_spec("ModelStreamInfer"))))
        caller.start()
        time.sleep(1.5)  # the client's start-up (about 0.5 s), then a few of the five words
        peer.kill()
        caller.join(30)
        assert result["code"] == "UNAVAILABLE"
        assert 0 < len(result["responses"]) < 5
