"""`clawdbot doctor` as a process: a healthy setup passes every check (a running gateway's page and
socket included); each broken setup it claims to detect fails that check, with the fix."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_config_cmd import clawdbot
from tests.e2e.harness import GatewayProcess, closed_port, free_port
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream

KEY = "sk-upstream-right-key"


@pytest.fixture(scope="module")
def openai_up() -> Iterator[OpenAIUpstream]:
    up = OpenAIUpstream(api_key=KEY).start()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def ollama_up() -> Iterator[OllamaTestServer]:
    with OllamaTestServer() as server:
        yield server


def doctor(tmp: Path, config: str, port: int, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    (tmp / "clawdbot.yaml").write_text(config)
    r = clawdbot("doctor", "--port", str(port), "--json", cwd=tmp,
                 env={"CLAWDBOT_DATA_DIR": str(tmp / "data"), **(env or {})})
    assert r.stderr == "" or "Traceback" not in r.stderr, r.stderr
    return r.returncode, json.loads(r.stdout)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def healthy(openai_url: str, ollama_url: str) -> str:
    return f"""\
services:
  - name: up
    type: openai
    endpoint: {openai_url}
    auth: {{type: bearer, key: "{KEY}"}}
  - name: ol
    type: ollama
    endpoint: {ollama_url}
  - name: toy
    type: mock
models:
  chat: [up/mock-a, ol/llama3.2, toy]
redis_url: redis://127.0.0.1:6379/0
"""


def test_a_healthy_setup_passes_every_check(tmp_path: Path, openai_up: OpenAIUpstream,
                                            ollama_up: OllamaTestServer) -> None:
    config = healthy(openai_up.base_url, ollama_up.url)
    (tmp_path / "clawdbot.yaml").write_text(config)
    port = free_port()
    with GatewayProcess(["serve"], tmp_path / "gw.log", {"CLAWDBOT_DATA_DIR": str(tmp_path / "data")},
                        port=port, cwd=tmp_path):
        code, report = doctor(tmp_path, config, port)
    checks = by_name(report)
    assert code == 0 and report["ok"] is True, [c for c in report["checks"] if c["status"] != "ok"]
    assert {c["status"] for c in report["checks"]} <= {"ok", "warn"}, report
    assert "a clawdbot gateway is running there" in checks[f"port 127.0.0.1:{port}"]["summary"]
    assert checks["chat page"]["status"] == "ok" and checks["chat socket"]["status"] == "ok"
    assert checks["service ol (ollama): models"]["summary"] == "serves llama3.2"
    assert "answered one token" in checks["service up (openai): completion"]["summary"]
    assert "PING answered" in checks["redis"]["summary"]
    r = clawdbot("doctor", "--port", str(free_port()), cwd=tmp_path, env={"CLAWDBOT_DATA_DIR": str(tmp_path / "d")})
    assert r.returncode == 0 and "all checks passed" in r.stdout and "[ ok ] service toy (mock): completion" in r.stdout


def test_a_stopped_upstream(tmp_path: Path) -> None:
    # a port with "403" in it: doctor once read the 403 in "could not connect to 127.0.0.1:40337"
    # as the upstream refusing the key (CI found it)
    port = closed_port(range(40300, 40400))
    config = f"services:\n  - name: gone\n    type: openai\n    endpoint: http://127.0.0.1:{port}/v1\n"
    code, report = doctor(tmp_path, config, free_port())
    check = by_name(report)["service gone (openai): reachable"]
    assert code == 1 and check["status"] == "fail"
    assert "start the server or fix `endpoint`" in check["fix"]


def test_a_wrong_key(tmp_path: Path, openai_up: OpenAIUpstream) -> None:
    config = (f"services:\n  - name: up\n    type: openai\n    endpoint: {openai_up.base_url}\n"
              f"    auth: {{type: bearer, key: sk-wrong}}\n")
    code, report = doctor(tmp_path, config, free_port())
    check = by_name(report)["service up (openai): credentials"]
    assert code == 1 and check["status"] == "fail" and "401" in check["summary"]
    assert "check auth.key" in check["fix"]
    assert "sk-wrong" not in json.dumps(report)


def test_a_missing_model(tmp_path: Path, ollama_up: OllamaTestServer) -> None:
    config = (f"services:\n  - name: ol\n    type: ollama\n    endpoint: {ollama_up.url}\n"
              "models:\n  chat: [ol/mistral:7b]\n")
    code, report = doctor(tmp_path, config, free_port())
    check = by_name(report)["service ol (ollama): models"]
    assert code == 1 and check["status"] == "fail" and "mistral:7b" in check["summary"]
    assert check["fix"].startswith("ollama pull mistral:7b")


def test_a_taken_port(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code, report = doctor(tmp_path, "services:\n  - name: toy\n    type: mock\n", server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
    check = by_name(report)[f"port 127.0.0.1:{server.server_address[1]}"]
    assert code == 1 and check["status"] == "fail" and "another program listens there" in check["summary"]


def test_an_unreachable_database(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/clawdbot"
    code, report = doctor(tmp_path, "services:\n  - name: toy\n    type: mock\n", free_port(),
                          {"CLAWDBOT_DATABASE_URL": url})
    check = by_name(report)["database"]
    assert code == 1 and check["status"] == "fail" and "cannot reach it" in check["summary"]


def test_an_unreachable_redis(tmp_path: Path) -> None:
    code, report = doctor(tmp_path, f"redis_url: redis://127.0.0.1:{closed_port()}/0\n"
                                    "services:\n  - name: toy\n    type: mock\n", free_port())
    check = by_name(report)["redis"]
    assert code == 1 and check["status"] == "fail"


def test_a_config_that_does_not_load_stops_there(tmp_path: Path) -> None:
    code, report = doctor(tmp_path, "services:\n  - name: toy\n    type: nonsense\n", free_port())
    assert code == 1 and [c["name"] for c in report["checks"]] == ["config"]
    assert "clawdbot.yaml:3" in report["checks"][0]["summary"]
