"""The gateway's CPU per chat page turn, against the same answer asked for on /v1 as a stream.

A `clawdbot serve` (SQLite state, its defaults) in front of ../shared/bench's mock (16 chunks, no
delay); one client at a time, so each figure is the gateway's own cost, not contention. Measured
from /proc: the gateway process's user + system CPU (and the system part) over N sequential turns,
after a warm-up. `--pyspy` samples only while a thread holds the GIL (`--gil`): SQLite's own work
in aiosqlite's thread runs without it.

    uv run python bench/chat_turn.py [--turns 400]        # needs the mock: ../shared/bench/setup.sh
    ... --pyspy /tmp/turn.folded    # and where the new-session turns' CPU goes (py-spy, folded stacks)

- `v1 stream`: POST /v1/chat/completions, stream, over one kept-alive connection;
- `chat, new session`: chat.send without a sessionId (a session created and stored, title set);
- `chat, follow-up`: chat.send in a session, 10 turns a session (the history sent upstream grows).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.web.client import WsClient  # noqa: E402

MASTER = "sk-chat-turn-bench-0123456789"
MOCK = "http://127.0.0.1:18000/v1"
TEXT = "Say hello. mock:delay=0 mock:chunks=16 mock:gap=0"
CONFIG = f"""server:
  master_key: ${{BENCH_MASTER}}
services:
  - name: mock
    type: openai
    endpoint: {MOCK}
models:
  mock-model: [mock/mock-model]
web:
  default_model: mock-model
  rate_limits: {{per_user_per_minute: 0, per_session_per_minute: 0, session_changes_per_minute: 0}}
"""


def cpu_s(pid: int, system: bool = False) -> float:
    """User + system CPU seconds (system only: `system`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[12]) + (0 if system else int(fields[11]))) / os.sysconf("SC_CLK_TCK")


def v1_streams(port: int, n: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    body = json.dumps({"model": "mock-model", "stream": True, "max_tokens": 32,
                       "messages": [{"role": "user", "content": TEXT}]})
    for _ in range(n):
        conn.request("POST", "/v1/chat/completions", body,
                     {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        assert r.status == 200 and data.endswith(b"data: [DONE]\n\n"), (r.status, data[-200:])


async def chat_turns(url: str, n: int, per_session: int) -> None:
    async with await WsClient.connect(url, additional_headers={"Authorization": f"Bearer {MASTER}"}) as c:
        await c.hello()
        session = None
        for i in range(n):
            if per_session and i % per_session == 0:
                session = None
            params = {"text": TEXT} | ({"sessionId": session} if session else {})
            sent = await c.call("chat.send", params)
            end = await c.run_end(sent["runId"], 30)
            assert end["payload"]["state"] == "final", end
            session = sent["sessionId"] if per_session else None
            c.frames.clear()  # the client keeps every frame: a long run would grow it


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=400)
    ap.add_argument("--pyspy", help="py-spy's folded stacks of the gateway during the new-session turns, here")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "clawdbot.yaml").write_text(CONFIG)
        port = 18000 + 900 + os.getpid() % 90
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDBOT_")}
        env |= {"BENCH_MASTER": MASTER, "CLAWDBOT_DATA_DIR": f"{tmp}/data"}
        gw = subprocess.Popen([sys.executable, "-m", "clawdbot", "serve", "--config", f"{tmp}/clawdbot.yaml",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/healthz")
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            url = f"http://127.0.0.1:{port}"
            v1_streams(port, 100)  # warm-up: first uses load what they need
            asyncio.run(chat_turns(url, 30, 10))
            rows = []
            phases: list[tuple[str, Callable[[], None]]] = [
                ("v1 stream", lambda: v1_streams(port, a.turns)),
                ("chat, new session", lambda: asyncio.run(chat_turns(url, a.turns, 0))),
                ("chat, follow-up (10 a session)", lambda: asyncio.run(chat_turns(url, a.turns, 10)))]
            for name, run in phases:
                spy_cmd = ["py-spy", "record", "-p", str(gw.pid), "-r", "250", "-f", "raw", "--gil", "--nonblocking",
                           "-o", str(a.pyspy)]
                spy = (subprocess.Popen(spy_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                       if a.pyspy and name == "chat, new session" else None)
                before, t0, sys0 = cpu_s(gw.pid), time.perf_counter(), cpu_s(gw.pid, True)
                run()
                cpu, wall = cpu_s(gw.pid) - before, time.perf_counter() - t0
                system = cpu_s(gw.pid, True) - sys0
                if spy is not None:
                    spy.send_signal(2)
                    spy.wait(30)
                rows.append((name, cpu / a.turns * 1000, system / a.turns * 1000, wall / a.turns * 1000))
        finally:
            gw.terminate()
            gw.wait(30)
    print(f"| {a.turns} each, one at a time | gateway CPU per turn (ms) | of it in the kernel | wall per turn (ms) |")
    print("|---|---:|---:|---:|")
    for name, cpu, system, wall in rows:
        print(f"| {name} | {cpu:.2f} | {system:.2f} | {wall:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
