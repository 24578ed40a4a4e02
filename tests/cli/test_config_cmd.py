"""`clawdbot config validate` and `clawdbot config show`, run as processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.e2e.harness import GatewayProcess, http_call

SECRET = "sk-master-very-secret-0123456789"
UPSTREAM_KEY = "sk-upstream-also-secret-987654"
DB_PASSWORD = "db-pass-word-42"


def clawdbot(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDBOT_")}
    return subprocess.run([sys.executable, "-m", "clawdbot", *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=60)


GOOD = """\
server:
  master_key: ${TEST_MASTER}
services:
  - name: up
    type: openai
    endpoint: http://127.0.0.1:9/v1
    auth: {type: bearer, key: "${TEST_UPSTREAM_KEY}"}
    headers: {Authorization: "Bearer ${TEST_UPSTREAM_KEY}", X-Title: clawdbot-test}
  - name: toy
    type: mock
models:
  chat: [up/some-model, toy]
"""
GOOD_ENV = {"TEST_MASTER": SECRET, "TEST_UPSTREAM_KEY": UPSTREAM_KEY}


def test_validate_accepts_a_good_file_and_says_what_it_holds(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(GOOD)
    r = clawdbot("config", "validate", "c.yaml", cwd=tmp_path, env=GOOD_ENV)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "serve would start" in r.stdout
    assert "up (openai), toy (mock)" in r.stdout and "auth: on" in r.stdout
    r = clawdbot("config", "validate", "c.yaml", "--json", cwd=tmp_path, env=GOOD_ENV)
    out = json.loads(r.stdout)
    assert out["ok"] is True and out["error"] is None
    assert [s["name"] for s in out["services"]] == ["up", "toy"] and out["models"] == ["chat"]
    assert SECRET not in r.stdout and UPSTREAM_KEY not in r.stdout


def test_validate_names_file_line_and_key_of_a_mistake(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("services:\n  - name: up\n    type: openai\n    endpoint: http://h/v1\n"
                                     "    timeouts: {first_byte: soon}\n")
    r = clawdbot("config", "validate", "c.yaml", cwd=tmp_path)
    assert r.returncode == 1
    assert "c.yaml:5" in r.stdout and "services[0].timeouts.first_byte" in r.stdout


def test_validate_refuses_an_unset_variable(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(GOOD)
    r = clawdbot("config", "validate", "c.yaml", "--json", cwd=tmp_path, env={"TEST_MASTER": SECRET})
    assert r.returncode == 1
    assert "TEST_UPSTREAM_KEY" in json.loads(r.stdout)["error"]


def test_validate_runs_the_checks_made_when_the_gateway_is_built(tmp_path: Path) -> None:
    """Mistakes the loader alone cannot see: a plugin's settings, the request log's."""
    base = "services:\n  - name: toy\n    type: mock\n"
    (tmp_path / "plugin.yaml").write_text(base + "plugins:\n  - name: pii\n    with: {no_such_setting: 1}\n")
    r = clawdbot("config", "validate", "plugin.yaml", cwd=tmp_path)
    assert r.returncode == 1 and "no_such_setting" in r.stdout, r.stdout
    (tmp_path / "log.yaml").write_text(base + "request_log: {enabled: true, max_rows: 4}\n")
    r = clawdbot("config", "validate", "log.yaml", cwd=tmp_path)
    assert r.returncode == 1 and "max_rows" in r.stdout, r.stdout


def test_validate_refuses_an_open_bind_without_a_master_key(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("server: {host: 0.0.0.0}\nservices:\n  - name: toy\n    type: mock\n")
    r = clawdbot("config", "validate", "c.yaml", cwd=tmp_path)
    assert r.returncode == 1 and "needs a master key" in r.stdout
    r = clawdbot("config", "validate", "c.yaml", cwd=tmp_path, env={"CLAWDBOT_MASTER_KEY": SECRET})
    assert r.returncode == 0, r.stdout


def test_validate_touches_no_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (tmp_path / "c.yaml").write_text(f"data_dir: {data}\nrequest_log: {{enabled: true}}\n"
                                     "services:\n  - name: toy\n    type: mock\n")
    r = clawdbot("config", "validate", "c.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout
    assert not data.exists()


def test_validate_warns_about_what_would_start_but_not_work(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("server: {master_key: change-me-clawdbot-master-key}\n"
                                     "services:\n  - name: g\n    type: mock\n")
    r = clawdbot("config", "validate", "c.yaml", cwd=tmp_path)
    assert r.returncode == 0
    assert "server.master_key still holds the placeholder" in r.stdout


def test_validate_without_a_file_says_how_to_get_one(tmp_path: Path) -> None:
    r = clawdbot("config", "validate", cwd=tmp_path)
    assert r.returncode == 1 and "clawdbot init" in r.stderr


def test_show_masks_every_secret(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(GOOD)
    env = {**GOOD_ENV, "CLAWDBOT_DATABASE_URL": f"postgresql+asyncpg://app:{DB_PASSWORD}@127.0.0.1/x"}
    for fmt in ((), ("--json",), ("--changed",)):
        r = clawdbot("config", "show", "--config", "c.yaml", *fmt, cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr
        for secret in (SECRET, UPSTREAM_KEY, DB_PASSWORD):
            assert secret not in r.stdout
    doc = json.loads(clawdbot("config", "show", "--config", "c.yaml", "--json", cwd=tmp_path, env=env).stdout)
    assert doc["server"]["master_key"] == "********"
    assert doc["services"][0]["auth"]["key"] == "********"
    assert doc["services"][0]["headers"] == {"Authorization": "********", "X-Title": "clawdbot-test"}
    assert doc["database_url"] == "postgresql+asyncpg://app:********@127.0.0.1/x"  # the environment's, applied
    assert doc["server"]["key_secret"] is None  # unset stays visibly unset
    assert doc["request_log"]["max_rows"] == 200_000  # the effective config: defaults included


def test_show_changed_is_a_config_that_loads_back(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("services:\n  - name: toy\n    type: mock\nmodels:\n  chat: [toy]\n")
    r = clawdbot("config", "show", "--config", "c.yaml", "--changed", cwd=tmp_path)
    assert r.returncode == 0
    assert r.stdout.startswith("# config: c.yaml")
    doc = yaml.safe_load(r.stdout)
    assert doc["services"] == [{"name": "toy", "type": "mock"}] and doc["models"] == {"chat": ["toy"]}
    assert "metering" not in doc  # sections at their defaults are left out
    (tmp_path / "back.yaml").write_text(r.stdout)
    assert clawdbot("config", "validate", "back.yaml", cwd=tmp_path).returncode == 0


def test_serve_and_show_take_clawdbot_yaml_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "clawdbot.yaml").write_text("services:\n  - name: toy\n    type: mock\n"
                                            "models:\n  from-the-file: [toy]\n")
    r = clawdbot("config", "show", "--changed", cwd=tmp_path)
    assert r.stdout.startswith("# config: clawdbot.yaml")
    with GatewayProcess(["serve"], tmp_path / "gw.log", cwd=tmp_path) as gw:
        status, body = http_call(gw, "GET", "/v1/models")
        assert status == 200
        assert "from-the-file" in {m["id"] for m in json.loads(body)["data"]}
    assert "config: clawdbot.yaml" in gw.log()
