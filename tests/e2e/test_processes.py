"""Whole processes: the split topology, start-up refusals, the seed's config, the embedded model."""

from __future__ import annotations

import http.client
import json
import urllib.request
from pathlib import Path

import openai
import pytest

from tests.e2e.harness import GatewayProcess, closed_port
from tests.upstreams.ollama_server import OllamaTestServer

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "config" / "seed_services.yaml"


def test_split_topology_shares_request_id(tmp_path: Path, ollama_upstream: OllamaTestServer) -> None:
    """clawdbot proxy (over Ollama) + clawdbot gateway (over the proxy), as the seed draws it."""
    proxy = GatewayProcess(["proxy"], tmp_path / "proxy.log", {"CLAWDBOT_MODEL_ENDPOINT": ollama_upstream.url})
    with proxy:
        gw = GatewayProcess(["gateway"], tmp_path / "gateway.log", {"CLAWDBOT_MODEL_ENDPOINT": proxy.url})
        with gw:
            assert "answers /v1/models" in gw.log()
            assert "Ollama" in proxy.log()
            c = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
            raw = c.chat.completions.with_raw_response.create(
                model="llama3.2", messages=[{"role": "user", "content": "through two layers"}])
            assert "through two layers" in (raw.parse().choices[0].message.content or "")
            rid = raw.headers["x-request-id"]
            stream = c.chat.completions.create(model="llama3.2", stream=True,
                                               messages=[{"role": "user", "content": "streamed twice"}])
            assert "streamed twice" in "".join(x.choices[0].delta.content or "" for x in stream if x.choices)
            for proc in (gw, proxy):
                log = proc.wait_for_log(rid)
                line = next(x for x in log.splitlines() if rid in x and "status=" in x)
                assert "status=200" in line
            assert ollama_upstream.last_headers.get("X-Request-ID", ollama_upstream.last_headers.get("X-Request-Id"))


def test_refuses_public_bind_without_key(tmp_path: Path) -> None:
    gw = GatewayProcess(["serve", "--host", "0.0.0.0"], tmp_path / "x.log", {"CLAWDBOT_MODEL_ENDPOINT": "http://127.0.0.1:9"})
    code, out = gw.run_to_exit()
    assert code != 0 and "master key" in out


def test_a_data_directory_that_cannot_be_written_is_said_plainly(tmp_path: Path) -> None:
    """A container's read-only root without a volume: one line saying what to fix, no traceback."""
    (tmp_path / "a-file").write_text("")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("server: {master_key: sk-data-dir-test-0123}\nservices:\n  - {name: a, type: mock}\n")
    code, out = GatewayProcess(["serve", "--config", str(cfg)], tmp_path / "x.log",
                               {"CLAWDBOT_DATA_DIR": str(tmp_path / "a-file" / "data")}).run_to_exit()
    assert code == 2 and "data directory must be writable" in out and "Traceback" not in out, out


def test_config_errors_name_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("services:\n  - name: a\n    type: ollama\n    endpont: http://127.0.0.1:1\n")
    code, out = GatewayProcess(["serve", "--config", str(cfg)], tmp_path / "x.log").run_to_exit()
    assert code == 2
    assert f"{cfg}:4" in out and "endpoint" in out


def test_a_hook_that_does_not_load_stops_the_start_before_listening(tmp_path: Path) -> None:
    cfg = tmp_path / "hooked.yaml"
    cfg.write_text("services:\n  - {name: a, type: mock}\nmodels:\n  m:\n    targets: [a]\n"
                   "    hook: no_such_module_anywhere:route_request\n")
    code, out = GatewayProcess(["serve", "--config", str(cfg)], tmp_path / "x.log").run_to_exit()
    assert code == 2
    assert f"{cfg}:6: models.m.hook: cannot import hook" in out  # file:line: key.path: message
    assert "listening on" not in out


def test_readyz_is_503_when_no_service_is_reachable(tmp_path: Path) -> None:
    cfg = tmp_path / "dead.yaml"
    cfg.write_text(f"services:\n  - name: gone\n    type: ollama\n    endpoint: http://127.0.0.1:{closed_port()}\n")
    with GatewayProcess(["serve", "--config", str(cfg)], tmp_path / "dead.log") as gw:
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        conn.request("GET", "/readyz")
        resp = conn.getresponse()
        data = json.loads(resp.read())
        assert resp.status == 503
        assert data["services"]["gone"]["reachable"] is False and data["services"]["gone"]["detail"]
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError) as info:
            c.chat.completions.create(model="gone", messages=[{"role": "user", "content": "x"}])
        assert info.value.status_code == 503


def test_seed_config_loads_and_serves(tmp_path: Path) -> None:
    gw = GatewayProcess(["serve", "--config", str(SEED)], tmp_path / "seed.log", {"ENV_MODEL_API_KEY": "sk-seed"})
    with gw:
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
        ids = {m.id for m in c.models.list()}
        assert {"text_generator_v1", "text_generator_v2", "llama-3-7b"} <= ids
        with pytest.raises(openai.APIStatusError) as info:  # a gRPC service whose host does not resolve here
            c.chat.completions.create(model="text_generator_v1", messages=[{"role": "user", "content": "x"}])
        assert info.value.status_code == 503
        assert "'text_generator_v1' is unavailable (gRPC UNAVAILABLE" in info.value.message
        assert "sk-seed" not in gw.log()


def test_embedded_local_model_streams(tmp_path: Path) -> None:
    """With nothing configured and nothing to detect, `serve` answers with the instruction-tuned
    SmolLM2 (the default model of the page and /v1/models' first), and Gemma 3 270M, a base model,
    stays selectable by its name."""
    pytest.importorskip("llama_cpp", reason="the `local` extra (llama-cpp-python) is not installed")
    gw = GatewayProcess(["serve"], tmp_path / "local.log", {"CLAWDBOT_DATA_DIR": str(tmp_path)})
    with gw:
        assert "embedded local model 'smollm2-135m-instruct'" in gw.log()
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0, timeout=300)
        models = {m.id: m for m in c.models.list()}
        assert {"smollm2-135m-instruct", "gemma-3-270m"} <= set(models)
        assert "Instruction-tuned" in json.dumps(models["smollm2-135m-instruct"].model_dump())
        assert "BASE model" in json.dumps(models["gemma-3-270m"].model_dump())
        # what a prompt string cannot carry is refused by name, before the model loads (never dropped)
        question = [{"role": "user", "content": "What is the capital of France?"}]
        tools = [{"type": "function", "function": {"name": "capital", "parameters": {"type": "object"}}}]
        image = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, {
            "type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]
        for param, kw in {"tools": {"tools": tools}, "messages": {"messages": image},
                          "logprobs": {"logprobs": True}}.items():
            with pytest.raises(openai.BadRequestError) as info:
                c.chat.completions.create(**{"model": "smollm2-135m-instruct", "max_tokens": 4,
                                             "messages": question, **kw})
            assert (info.value.code, info.value.param) == ("unsupported_parameter", param), info.value.body
        shown = urllib.request.urlopen(urllib.request.Request(gw.url + "/api/show", method="POST",
                                       data=b'{"model": "smollm2-135m-instruct"}'), timeout=10)
        assert json.loads(shown.read())["capabilities"] == ["completion"]  # so Ollama apps offer no tools
        ready = json.loads(urllib.request.urlopen(gw.url + "/readyz", timeout=10).read())
        assert ready["services"]["local"]["detail"] == "smollm2-135m-instruct (not loaded)"
        stream = c.chat.completions.create(
            model="smollm2-135m-instruct", stream=True, stream_options={"include_usage": True}, max_tokens=24,
            temperature=0, messages=[{"role": "user", "content": "What is the capital of France?"}])
        chunks = list(stream)
        pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        assert len(pieces) >= 2 and "Paris" in "".join(pieces)
        usage = [c.usage for c in chunks if c.usage]
        assert usage and usage[0].prompt_tokens > 0 and 0 < usage[0].completion_tokens <= 24
        offered = c.chat.completions.create(model="smollm2-135m-instruct", max_tokens=4, messages=question,
                                            tools=tools, tool_choice="none")  # none: nothing to refuse
        assert offered.choices[0].message.content and not offered.choices[0].message.tool_calls
        base = c.chat.completions.create(model="gemma-3-270m", max_tokens=8,
                                         messages=[{"role": "user", "content": "The capital of France is"}])
        assert base.model == "gemma-3-270m" and base.choices[0].message.content
