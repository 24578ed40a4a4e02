"""`clawdbot serve --workers N` (cli/workers.py) as real processes on one port with the real Redis
and a SQLite file: refused without shared state, saying why; the kernel spreads new connections
over the workers; a key's requests-per-minute limit holds across them (Redis); a worker killed
with SIGKILL is started again while the others serve; SIGTERM lets an open stream finish, then
every process exits and the command exits 0; the panel's CSRF token of one worker passes at
another without a master key."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.harness import GatewayProcess, until
from tests.upstreams.openai_server import OpenAIUpstream

MASTER = "sk-workers-master-0123456789"
REDIS = "redis://127.0.0.1:6379/0"


def config(upstream: OpenAIUpstream, master: bool = True, redis: bool = True, database: str | None = None) -> str:
    lines = ["server:", "  log_format: json"]
    if master:
        lines.append(f"  master_key: {MASTER}")
    if redis:
        lines += [f"redis_url: {REDIS}", f"redis_prefix: \"workers-{uuid.uuid4().hex[:8]}:\""]
    if database:
        lines.append(f"database_url: {database}")
    return "\n".join(lines) + f"""
services:
  - name: oa
    type: openai
    endpoint: {upstream.url}/v1
models:
  chat: [oa/mock-a]
"""


def start(tmp: Path, text: str, workers: int = 2) -> GatewayProcess:
    (tmp / "clawdbot.yaml").write_text(text)
    return GatewayProcess(["serve", "--config", str(tmp / "clawdbot.yaml"), "--workers", str(workers)],
                          tmp / "gateway.log", {"CLAWDBOT_DATA_DIR": str(tmp)}).start()


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIUpstream]:
    with OpenAIUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    g = start(tmp_path_factory.mktemp("workers"), config(upstream))
    both_up(g)
    yield g
    g.stop()


def both_up(g: GatewayProcess) -> set[int]:
    """The process answers /healthz as soon as one worker listens; the other may take a moment more
    on a loaded machine (each builds a whole gateway): until both have answered."""
    seen = until(lambda: (lambda s: s if len(s) == 2 else None)(pids(g, 20)), deadline=60)
    assert seen, "the second worker never answered"
    return set(seen)


def fresh(gw: GatewayProcess, method: str, path: str, body: Any = None,
          headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One request on a new connection: the kernel picks the worker for each."""
    host, port = gw.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, data, {"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None
    finally:
        conn.close()


def pids(gw: GatewayProcess, tries: int = 40) -> set[int]:
    seen = set()
    for _ in range(tries):
        status, out = fresh(gw, "GET", "/debug/stats", headers={"Authorization": f"Bearer {MASTER}"})
        assert status == 200, out
        seen.add(out["processes"][0]["pid"] if "processes" in out else out["pid"])
    return seen


def cli(tmp: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp / "clawdbot.yaml").write_text(text)
    return subprocess.run([sys.executable, "-m", "clawdbot", "serve", "--config", str(tmp / "clawdbot.yaml"), *args],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "CLAWDBOT_DATA_DIR": str(tmp)})


def test_more_workers_than_one_need_shared_state(tmp_path: Path, upstream: OpenAIUpstream) -> None:
    out = cli(tmp_path, config(upstream, redis=False), "--workers", "2")
    assert out.returncode == 2 and "needs Redis" in out.stderr and "rate limits" in out.stderr, out.stderr
    out = cli(tmp_path, config(upstream, database="memory://"), "--workers", "3")
    assert out.returncode == 2 and "memory://" in out.stderr and "Redis" not in out.stderr, out.stderr
    out = cli(tmp_path, config(upstream), "--workers", "0")
    assert out.returncode == 2 and "--workers must be 1..64" in out.stderr, out.stderr


def test_the_kernel_spreads_connections_over_the_workers(gw: GatewayProcess) -> None:
    assert len(pids(gw)) == 2  # 40 new connections, two processes answering


def test_a_keys_rpm_holds_across_the_workers(gw: GatewayProcess) -> None:
    status, made = fresh(gw, "POST", "/admin/api/keys", {"name": "rpm-4", "rpm": 4},
                            {"Authorization": f"Bearer {MASTER}"})
    assert status == 201, made
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    statuses = [fresh(gw, "POST", "/v1/chat/completions", body, {"Authorization": f"Bearer {made['key']}"})[0]
                for _ in range(10)]
    assert statuses.count(200) == 4 and statuses.count(429) == 6, statuses


def test_a_killed_worker_is_started_again_while_the_other_serves(gw: GatewayProcess) -> None:
    before = pids(gw)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=3, timeout=30)
    for _ in range(6):  # the survivor answers (the client retries a connection the dead one refused)
        assert client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    now = until(lambda: (lambda seen: seen if len(seen) == 2 and victim not in seen else None)(pids(gw, 20)),
                deadline=30)
    assert now and victim not in now and len(now) == 2, now
    assert gw.wait_until(lambda log: "worker" in log and "exited with -9" in log, what="the restart")


def test_sigterm_lets_an_open_stream_finish_then_all_exit(tmp_path: Path, upstream: OpenAIUpstream) -> None:
    g = start(tmp_path, config(upstream))
    assert g.proc is not None
    workers = both_up(g)
    client = openai.OpenAI(base_url=g.url + "/v1", api_key=MASTER, max_retries=0, timeout=30)
    stream = client.chat.completions.create(
        model="chat", stream=True,
        messages=[{"role": "user", "content": "one two three four fault:chunks=6 fault:slow=300"}])
    first = next(iter(stream))  # open: its worker is serving it
    assert first.choices
    g.proc.send_signal(signal.SIGTERM)  # the supervisor only: it stops the workers
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert len(text.split()) >= 4, text  # the rest of the answer came after the signal
    assert g.proc.wait(timeout=30) == 0
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    g.stop()


def test_the_panels_csrf_token_passes_at_every_worker_without_a_master_key(
        tmp_path: Path, upstream: OpenAIUpstream) -> None:
    g = start(tmp_path, config(upstream, master=False))
    try:
        both_up(g)
        status, who = fresh(g, "GET", "/auth/status")
        assert status == 200 and who["csrf"], who
        test = {"service": {"name": "probe", "type": "openai", "endpoint": upstream.url + "/v1"}}
        for _ in range(12):  # each on a new connection: both workers are asked
            status, out = fresh(g, "POST", "/panel/api/service-test", test,
                                   {"X-Clawdbot-CSRF": who["csrf"], "Origin": g.url})
            assert status == 200 and out["ok"], out
    finally:
        g.stop()
