"""Schemathesis against /openapi.json of a running gateway: a real process on a real socket, its chat
endpoints answered by the OpenAI test upstream (tests/upstreams/openai_server.py), every operation
in every phase (examples, coverage, fuzzing, stateful through the document's links), positive and
negative data, `--checks all`: no 5xx, no answer outside its documented schema or statuses, bad
input refused and good input served, 405 with `Allow`.

Bounded for CI: 10 examples per operation (~7,000 cases with the coverage phase's; 30 s on an
idle two-core machine, about two minutes on a busy one). CLAWDBOT_FUZZ_EXAMPLES runs deeper
(nightly, or by hand: CLAWDBOT_FUZZ_EXAMPLES=100), CLAWDBOT_FUZZ_SEED picks another seed. A
failure shows schemathesis's report (each case with a curl line to reproduce it); the JUnit report
is kept in test-artifacts/. tests/e2e/schemathesis_hooks.py says what the hooks give the cases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clawdbot.api.openapi_paths import MODEL  # the model the document's examples name: served here
from tests.e2e.conftest import artifacts_dir
from tests.e2e.harness import GatewayProcess, http_call, serve_config
from tests.upstreams.openai_server import OpenAIUpstream

MASTER = "sk-test-schemathesis-master-0123456789"
REPO = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("CLAWDBOT_FUZZ_EXAMPLES", "10"))
SEED = os.environ.get("CLAWDBOT_FUZZ_SEED", "20261205")
PHASES = "examples,coverage,fuzzing,stateful"


def config(upstream: OpenAIUpstream) -> str:
    return f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
  max_body_bytes: 1048576
  # every case sends a key; `ignored_auth` sends wrong ones on purpose, more than the default burst
  auth_failures_burst: 100000
  auth_failures_per_minute: 100000
request_log:
  enabled: true
  flush_interval: 0.05
services:
  - name: oa
    type: openai
    endpoint: {upstream.url}/v1
    timeouts: {{connect: 5, first_byte: 30, total: 60}}  # a loaded CI machine is slow, not an outage
    breaker: {{enabled: false}}
models:
  {MODEL}: [oa/mock-a]
"""


# 413 is how a body past its byte limit is refused (docs/api.md, Limits): a rejection, which
# schemathesis's default list for negative data leaves out (JSON Schema cannot say "bytes").
SETTINGS = """
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
"""


def schemathesis(url: str, report: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    """The `st` CLI of this venv against `url`; its files (settings, cache) in `workdir`."""
    st = Path(sys.executable).parent / "st"
    settings = workdir / "schemathesis.toml"
    settings.write_text(SETTINGS)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(REPO / "tests" / "e2e" / "schemathesis_hooks.py")}
    cmd = [str(st), "--config-file", str(settings), "run", f"{url}/openapi.json", "--checks", "all", "--phases", PHASES,
           "--max-examples", str(EXAMPLES), "--seed", SEED, "--header", f"Authorization: Bearer {MASTER}",
           "--request-timeout", "90", "--workers", "1", "--no-color", "--output-truncate", "false",
           "--generation-database", "none", "--report", "junit", "--report-junit-path", str(report)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir, timeout=240 + 20 * EXAMPLES)


def warm_up(gw: GatewayProcess) -> None:
    """The stores load the SQL layer at their first use (state/lazy.py: ~2 s idle, several on a
    loaded machine): that first call is paid here, not by a case held to `max_response_time`."""
    auth = {"Authorization": f"Bearer {MASTER}"}
    for path, status in (("/admin/api/keys", 200), ("/admin/api/requests", 200), ("/admin/api/spend", 200),
                         ("/v1/responses/resp_warm_up", 404)):
        assert http_call(gw, "GET", path, headers=auth)[0] == status, path


@pytest.mark.timeout(300 + 20 * EXAMPLES)  # a deep run takes longer than a test's default 300 s
def test_the_gateway_keeps_its_documented_contract(tmp_path: Path, openai_upstream: OpenAIUpstream) -> None:
    report = artifacts_dir() / "schemathesis-junit.xml"
    with serve_config(tmp_path, config(openai_upstream), MASTER) as gw:
        warm_up(gw)
        out = schemathesis(gw.url, report, tmp_path)
        log = gw.log()
    print(out.stdout[-60_000:], out.stderr[-5_000:])  # pytest shows it when the test fails
    assert out.returncode == 0, f"schemathesis found failures (report above; JUnit: {report})"
    assert "Traceback" not in log, log[-20_000:]

