"""Two builds of clawdbot in one run: the same load, interleaved, against a checkout "before" a change
and this one "after", both pinned to the gateway CPU, with ../shared/bench's mock, wrk script and
c=1 client. Prints RPS (median of the repetitions), gateway CPU ms per request, and the c=1 added
latency and TTFT of both, so a regression shows against noise that hit both alike.

    python3 bench/before_after.py --before /path/to/old/checkout [--reps 5] [--seconds 5]

Each checkout needs its own .venv (`uv sync --frozen --all-extras` in it). Needs ../shared/bench's
setup (`setup.sh`: wrk, the mock, the client's venv)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("CLAWDBOT_SHARED_BENCH", HERE.parent.parent / "shared" / "bench"))
MOCK = "/tmp/bench-bin/mockllm"
CLIENT_PY = "/tmp/bench-venv/bin/python"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


@contextlib.contextmanager
def started(cmd: list[str], cpu: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["taskset", "-c", cpu, *cmd], env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)


def wait_ready(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def wrk(port: int, stream: bool, seconds: int, cpu: str) -> dict[str, float]:
    env = {**os.environ, "BENCH_STREAM": "1" if stream else "0"}
    out = subprocess.run(["taskset", "-c", cpu, "wrk", "-t1", "-c64", f"-d{seconds}s", "-s", str(SHARED / "post.lua"),
                          f"http://127.0.0.1:{port}/v1/chat/completions"], env=env, capture_output=True, text=True,
                         check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    d = json.loads(line[len("WRKJSON "):])
    d["rps"] = d["requests"] / (d["duration_us"] / 1e6)
    d["errors"] = sum(d[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
    return d


def quiet(pid: int, below: float = 0.05, seconds: float = 10) -> None:
    """Wait until the gateway's CPU use falls below `below` (the previous run has drained)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        a = cpu_seconds(pid)
        time.sleep(0.2)
        if (cpu_seconds(pid) - a) / 0.2 < below:
            return


def client(kind: str, sides: dict[str, int], n: int, cpu: str) -> dict[str, dict[str, float]]:
    gws = [json.dumps({"name": name, "base": f"http://127.0.0.1:{port}/v1", "model": "mock-model", "key": "sk-bench"})
           for name, port in sides.items()]
    cmd = ["taskset", "-c", cpu, CLIENT_PY, str(SHARED / "client.py"), kind, "--direct", "http://127.0.0.1:18000/v1",
           "--n", str(n)]
    for g in gws:
        cmd += ["--gw", g]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    data = json.loads(next(x for x in out.splitlines()[::-1] if x.startswith("CLIENTJSON "))[len("CLIENTJSON "):])
    return {name: side for name, side in data["sides"].items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="checkout of the old build (with its .venv)")
    ap.add_argument("--after", default=str(HERE.parent), help="checkout of the new build (default: this one)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--lat-n", type=int, default=2000)
    ap.add_argument("--stream-n", type=int, default=100)
    ap.add_argument("--gw-cpu", default="1")
    ap.add_argument("--load-cpu", default="0")
    a = ap.parse_args()
    builds = {"before": (Path(a.before), 18791), "after": (Path(a.after), 18792)}
    with contextlib.ExitStack() as stack:
        stack.enter_context(started([MOCK, "-addr", "127.0.0.1:18000"], a.load_cpu))
        wait_ready("http://127.0.0.1:18000/health")
        pids = {}
        for name, (root, port) in builds.items():
            env = {"CLAWDBOT_MODEL_ENDPOINT": "http://127.0.0.1:18000/v1", "CLAWDBOT_MASTER_KEY": "sk-bench",
                   "CLAWDBOT_DATA_DIR": tempfile.mkdtemp(prefix=f"bench-{name}-")}
            proc = stack.enter_context(started([str(root / ".venv/bin/clawdbot"), "serve", "--port", str(port)],
                                               a.gw_cpu, env))
            wait_ready(f"http://127.0.0.1:{port}/healthz")
            pids[name] = proc.pid
        results: dict[str, dict[str, list[dict[str, float]]]] = {n: {"nonstream": [], "stream": []} for n in builds}
        for _name, (_, port) in builds.items():  # warm-up, not recorded
            wrk(port, False, 2, a.load_cpu)
            wrk(port, True, 2, a.load_cpu)
        order = list(builds)
        for rep in range(a.reps):
            for name in order if rep % 2 == 0 else order[::-1]:
                port, pid = builds[name][1], pids[name]
                for kind in ("nonstream", "stream"):
                    quiet(pid)
                    cpu0 = cpu_seconds(pid)
                    r = wrk(port, kind == "stream", a.seconds, a.load_cpu)
                    r["cpu_ms_per_req"] = (cpu_seconds(pid) - cpu0) * 1000 / max(1, r["requests"])
                    results[name][kind].append(r)
        sides = {name: port for name, (_, port) in builds.items()}
        lat = client("latency", sides, a.lat_n, a.load_cpu)
        stream = client("stream", sides, a.stream_n, a.load_cpu)
    print("| build | RPS c64 non-stream | RPS c64 stream (16 chunks) | CPU ms/req non-stream | CPU ms/req stream | "
          "added p50 / p99 c=1 (ms) | added TTFT p50 / p99 (ms) | wrk errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in builds:
        ns, st = results[name]["nonstream"], results[name]["stream"]
        med = statistics.median
        la, sa = lat[name]["added_ms"], stream[name]
        ttft = sa["added_ttft_ms"]
        print(f"| {name} | {med(r['rps'] for r in ns):.0f} | {med(r['rps'] for r in st):.0f} | "
              f"{med(r['cpu_ms_per_req'] for r in ns):.3f} | {med(r['cpu_ms_per_req'] for r in st):.3f} | "
              f"{la['p50']:.3f} / {la['p99']:.3f} | {ttft.get('p50', float('nan')):.3f} / "
              f"{ttft.get('p99', float('nan')):.3f} | {sum(r['errors'] for r in ns + st):.0f} |")
    print("\nper repetition (RPS non-stream / stream):")
    for name in builds:
        print(f"  {name}: " + ", ".join(f"{n['rps']:.0f}/{s['rps']:.0f}" for n, s in
                                       zip(results[name]["nonstream"], results[name]["stream"], strict=True)))


if __name__ == "__main__":
    main()
