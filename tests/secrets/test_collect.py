"""The leak scan can fail: a pytest session in which a secret is planted in a collected source ends
with a failing exit status and a report naming the source and line; a gateway process run through
the harness has its log, its /metrics, its state store and the responses it gave collected, and a
key the gateway is made to log is reported at its line."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

import openai

from tests.e2e.harness import serve_config
from tests.secrets.collect import Collector, activated
from tests.secrets.scan import Checker
from tests.secrets.taps import installed
from tests.upstreams.openai_server import OpenAIUpstream

ROOT = Path(__file__).resolve().parents[2]
PLANTED = "sk-planted-master-0123456789abcdef"
MASTER = "sk-collect-master-0123456789abcdef"

INNER = f'''
from tests.secrets.collect import active


def test_plants_a_key_in_a_log() -> None:
    c = active()
    c.add_secret("{PLANTED}", "master key", "planted by the inner test")
    c.add_text("gateway logs", "planted gateway log", "starting\\nready\\nauth failed for Bearer {PLANTED}\\n")


def test_the_masked_form_is_fine() -> None:
    active().add_text("gateway logs", "planted masked log", "key {PLANTED[:10]}...{PLANTED[-4:]} refused\\n")
'''


def inner_session(tmp_path: Path, body: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    (tmp_path / "test_inner.py").write_text(body)
    out = tmp_path / "leaks.txt"
    # TMPDIR: a failing session keeps what it collected for a look; here, inside this test's directory
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.secrets.plugin",
                        "--secrets-report", str(out), "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return r, out


def test_a_planted_secret_fails_the_session_naming_source_and_line(tmp_path: Path) -> None:
    r, out = inner_session(tmp_path, INNER)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "2 passed" in r.stdout  # every test passed: the scan alone failed the run
    expected = ("planted gateway log (test test_inner.py::test_plants_a_key_in_a_log), line 3: "
                "master key (planted by the inner test) as Bearer header")
    assert expected in r.stdout and expected in out.read_text()
    assert "1 secret leak(s)" in r.stdout  # the masked form in the other log is not one
    assert PLANTED not in r.stdout and PLANTED not in out.read_text()  # the report does not leak it again


def test_without_a_leak_the_session_passes(tmp_path: Path) -> None:
    r, out = inner_session(tmp_path, INNER.replace("Bearer {PLANTED}".replace("{PLANTED}", PLANTED), "Bearer <hidden>"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "secrets scan: no leaks (secrets: 1 master key; sources: 2 gateway logs)" in r.stdout
    assert not out.exists()


def config(up: OpenAIUpstream) -> str:
    return f"""server:
  master_key: ${{TEST_MASTER_KEY}}
  log_format: json
services:
  - name: oa
    type: openai
    endpoint: {up.base_url}
    auth: {{key: sk-collect-upstream-0123456789}}
models:
  chat: [oa/mock-a]
"""


def test_a_gateway_is_collected_and_a_key_it_logs_is_found(tmp_path: Path) -> None:
    collector = Collector(tmp_path / "collected")
    up = OpenAIUpstream(api_key="sk-collect-upstream-0123456789")
    with installed(), activated(collector), up, serve_config(tmp_path, config(up), MASTER) as gw:
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        conn.request("POST", "/admin/api/keys", json.dumps({"name": "planted"}),
                     {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"})
        key = json.loads(conn.getresponse().read())["key"]
        conn.close()
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=20)
        answer = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hello"}])
        assert answer.choices[0].message.content == "echo: hello"
        assert not list(Checker(collector.secrets.values()).scan_all(collector.sources()))  # clean so far
        # the plant: a client that uses its key as its request id (a sane id: the gateway takes it, logs
        # it on the access line and answers with it), so the gateway itself writes the key
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "again"}],
                                       extra_headers={"X-Request-ID": key})
        log = gw.wait_for_log(f'"request_id":"{key}"')
    planted = next(i for i, line in enumerate(log.splitlines(), 1) if key in line)

    kinds = {s.kind for s in collector.secrets.values()}
    assert {"master key", "upstream key", "virtual key"} <= kinds
    assert collector.secrets[key].origin.startswith("created by")
    sources = list(collector.sources())
    names = " | ".join(s.name for s in sources)
    assert "log of gateway `clawdbot serve --config" in names
    assert "GET /metrics of gateway" in names and "HTTP response to POST /v1/chat/completions" in names, names
    assert "HTTP response to POST /admin/api/keys from" in names  # kept, without its key
    state = [s for s in sources if s.name.startswith("SQLite ")]
    assert state and "audit_log: " in state[0].text and "api_keys: " in state[0].text
    metrics = next(s for s in sources if "GET /metrics" in s.name)
    assert "clawdbot_requests_total" in metrics.text  # scraped with the master key, not refused

    leaks = list(Checker(collector.secrets.values()).scan_all(sources))
    in_log = [(leak.where, leak.form, leak.secret.kind) for leak in leaks if leak.source.startswith("log of gateway")]
    assert in_log == [(f"line {planted}", "whole", "virtual key")], [leak.describe() for leak in leaks]
    where = {leak.source.split(" from ")[0].split(" [")[0] for leak in leaks}
    assert "HTTP response to POST /v1/chat/completions" in where  # its X-Request-ID header
    assert all(leak.secret.value == key for leak in leaks)
