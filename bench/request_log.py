"""The request log's cost in one run: the same build served twice, the request log off and on (no
bodies), interleaved `wrk -c64` non-stream runs against ../shared/bench's mock, both gateways
pinned to the gateway CPU. Prints RPS (median of the repetitions) and gateway CPU ms per request;
issue 12 wants "on" within 10% of "off".

    python3 bench/request_log.py [--reps 7] [--seconds 5] [--max-rows 20000] [--database-url postgresql://...]

The default row budget is one the warm-up fills, so every run is at the steady state (each batch
written may empty the ring's oldest table); the warm-up goes on until the "on" side has written.

Needs ../shared/bench's setup (setup.sh: wrk and the mock)."""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from before_after import MOCK, cpu_seconds, quiet, started, wait_ready, wrk

HERE = Path(__file__).resolve().parent
CONFIG = """server:
  master_key: sk-bench
services:
  - name: mock
    type: openai
    endpoint: http://127.0.0.1:18000/v1
    max_pool: 128
models:
  mock-model: [mock/mock-model]
request_log: {{enabled: {enabled}, max_rows: {max_rows}}}
{database}"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--database-url", help="the database of both (default: SQLite in a temporary data dir)")
    ap.add_argument("--max-rows", type=int, default=20_000, help="request_log.max_rows of the 'on' side")
    ap.add_argument("--gw-cpu", default="1")
    ap.add_argument("--load-cpu", default="0")
    a = ap.parse_args()
    sides = {"off": 18793, "on": 18794}
    database = f"database_url: {a.database_url}\n" if a.database_url else ""
    exe = str(HERE.parent / ".venv/bin/clawdbot")
    with contextlib.ExitStack() as stack:
        stack.enter_context(started([MOCK, "-addr", "127.0.0.1:18000"], a.load_cpu))
        wait_ready("http://127.0.0.1:18000/health")
        pids = {}
        for name, port in sides.items():
            d = tempfile.mkdtemp(prefix=f"bench-reqlog-{name}-")
            cfg = Path(d) / "clawdbot.yaml"
            cfg.write_text(CONFIG.format(enabled=str(name == "on").lower(), max_rows=a.max_rows, database=database))
            proc = stack.enter_context(started([exe, "serve", "--config", str(cfg), "--port", str(port)], a.gw_cpu,
                                               {"CLAWDBOT_DATA_DIR": d}))
            wait_ready(f"http://127.0.0.1:{port}/healthz")
            pids[name] = proc.pid
        for port in sides.values():  # warm-up, not recorded
            wrk(port, False, 2, a.load_cpu)
        for _ in range(30):  # the "on" side's database opened and its writer running: past the row budget
            wrk(sides["on"], False, 2, a.load_cpu)
            if written(sides["on"]) > a.max_rows:
                break
        else:
            sys.exit("the request log wrote nothing in a minute of warm-up")
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
        order = list(sides)
        for rep in range(a.reps):
            for name in order if rep % 2 == 0 else order[::-1]:
                quiet(pids[name])
                cpu0 = cpu_seconds(pids[name])
                r = wrk(sides[name], False, a.seconds, a.load_cpu)
                r["cpu_ms_per_req"] = (cpu_seconds(pids[name]) - cpu0) * 1000 / max(1, r["requests"])
                runs[name].append(r)
    med = statistics.median
    print("| request log | RPS c64 non-stream (median) | CPU ms/req | wrk errors |")
    print("|---|---:|---:|---:|")
    for name in sides:
        rs = runs[name]
        print(f"| {name} | {med(r['rps'] for r in rs):.0f} | {med(r['cpu_ms_per_req'] for r in rs):.3f} | "
              f"{sum(r['errors'] for r in rs):.0f} |")
    off, on = (med(r["rps"] for r in runs[n]) for n in ("off", "on"))
    print(f"\non / off: {on / off:.3f}")
    for name in sides:
        print(f"  {name}: " + ", ".join(f"{r['rps']:.0f}" for r in runs[name]))


def written(port: int) -> float:
    """The gateway's clawdbot_request_log_records_total{outcome="written"} (0 before the first batch)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer sk-bench"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith('clawdbot_request_log_records_total{outcome="written"}'):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


if __name__ == "__main__":
    main()
