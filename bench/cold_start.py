"""What a request costs the gateway after the gateway sat idle: the loop thread's CPU for the first
request after a pause, against the requests right after it.

    .venv/bin/python bench/cold_start.py            # non-stream, ~1 min
    .venv/bin/python bench/cold_start.py --stream   # streams: CPU up to the first content chunk
    .venv/bin/python bench/cold_start.py --spin     # CPU 1 kept busy by a nice-19 spinner meanwhile

The Go mock (../shared/bench setup.sh) and this client on CPU 0, `clawdbot serve` (bench/configs/
bare.yaml) on CPU 1, sequential requests over one kept-alive connection (bench/tail_causes.py's
client). For each pause: `--reps` times, sleep the pause, then 5 requests; the first one's loop-thread
CPU (/proc schedstat) against the third to fifth. ../shared/bench measures c=1 in rounds that rotate
between targets, so the first request of each round comes after such a pause (docs/benchmarks.md,
"the first request after a pause")."""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tail_causes import MOCK, ROOT, Target, free_port, started, wait_port

PAUSES_MS = (0, 1, 5, 10, 20, 50, 100, 300)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stream", action="store_true", help="streams: the CPU up to the first content chunk")
    ap.add_argument("--spin", action="store_true", help="a nice-19 busy loop on the gateway's CPU meanwhile")
    ap.add_argument("--reps", type=int, default=30, help="pauses of each length")
    ap.add_argument("--config", default=str(ROOT / "bench/configs/bare.yaml"))
    ap.add_argument("--gw-cpu", type=int, default=1)
    ap.add_argument("--load-cpu", type=int, default=0)
    a = ap.parse_args()
    if not os.access(MOCK, os.X_OK):
        raise SystemExit(f"{MOCK} missing: run `bash ../shared/bench/setup.sh --no-litellm` first")
    os.sched_setaffinity(0, {a.load_cpu})
    mock_port, gw_port = free_port(), free_port()
    base = f"http://127.0.0.1:{mock_port}/v1"
    env = {"BENCH_MOCK_BASE": base, "CLAWDBOT_DATA_DIR": tempfile.mkdtemp(prefix="cold-start-")}
    with contextlib.ExitStack() as stack:
        mock = stack.enter_context(started([MOCK, "-addr", f"127.0.0.1:{mock_port}"], a.load_cpu))
        wait_port(mock_port, proc=mock)
        gw = stack.enter_context(started([str(ROOT / ".venv/bin/clawdbot"), "serve", "--config", a.config,
                                          "--port", str(gw_port)], a.gw_cpu, env))
        wait_port(gw_port, proc=gw)
        if a.spin:
            stack.enter_context(started(["nice", "-n", "19", sys.executable, "-c", "while True: pass"], a.gw_cpu))
        target = Target("clawdbot", gw_port, "/v1", gw.pid, {}, a.stream)
        for _ in range(300):
            target.measure()
        what = "streams, CPU to the first content chunk" if a.stream else "non-stream"
        print(f"{what}{', CPU kept busy by a spinner' if a.spin else ''}; loop-thread CPU (ms), "
              f"p50 of {a.reps}:")
        print(f"{'pause (ms)':>10} {'first':>8} {'3rd-5th':>8} {'first, wall':>12}")
        for pause in PAUSES_MS:
            first, rest, wall = [], [], []
            for _ in range(a.reps):
                time.sleep(pause / 1000)
                target.samples.clear()
                for _ in range(5):
                    target.measure()
                cpu = [s["threads"][gw.pid][0] / 1e6 for s in target.samples]
                first.append(cpu[0])
                rest += cpu[2:]
                wall.append(target.samples[0]["ms"])
            print(f"{pause:>10} {statistics.median(first):>8.3f} {statistics.median(rest):>8.3f} "
                  f"{statistics.median(wall):>12.3f}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt, subprocess.CalledProcessError):
        sys.exit(main())
