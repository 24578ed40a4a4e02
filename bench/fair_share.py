"""Fair share under overload (issue 17): does one tenant's burst starve the others?

    .venv/bin/python bench/fair_share.py [--seconds 60] [--rounds 4] [--rate 12] [--burst 10] [--slots 4]
                                         [--delay-ms 50]
    .venv/bin/python bench/fair_share.py micro [--before FILE]   # the limiter's hot path, ns per call
    .venv/bin/python bench/fair_share.py instructions --before SRC [-n 2000]   # per request, callgrind

A real `clawdbot serve` (its own process) in front of the OpenAI test upstream (another process,
tests/upstreams/openai_server.py, answering every chat after a fixed `--delay-ms`), all on
127.0.0.1. Two services on that upstream, each with `limits.max_inflight: --slots` and the default
queue (64): `fair` (fair share on, by key: the default) and `fifo` (`fair_share: {enabled: false}`).
Five virtual keys A..E made through the admin API. For each service, two phases of `--seconds`
(split into `--rounds` interleaved rounds, so that other load on the machine falls on all alike):

- steady: B..E each send `--rate` requests/s (Poisson arrivals, seeded), below the service's
  capacity (slots / delay);
- burst: the same, plus A at `--burst` times that rate, far above capacity.

Each request's queue wait is the gateway's own measure, `queue_wait_ms` in its access-log line
(matched by the X-Request-ID the client sends; no line field: it did not wait). Reported per
tenant and phase: requests, refused (503 `overloaded`: queue full or pushed out), p50/p99 wait of
those answered. The target: under fair share, every tenant but A keeps its burst p99 within 2x of
its steady p99. Every load loop is bounded: arrivals by rate x seconds, each request by a 60 s
timeout, requests outstanding at once by a cap.

`micro` times `try_acquire()` + `release()` of a free limiter (the path of every request when a
slot is free) for this build and, with `--before`, a limiter module taken from another build
(`git show HEAD:src/clawdbot/routing/limiter.py > /tmp/limiter_before.py`). `instructions` counts
the CPU instructions one request costs the gateway (valgrind's callgrind, deterministic to a
percent, like bench/instructions.sh but against the test upstream, no other setup) with a
`max_inflight` service, so every request takes and frees a slot: another build's `src` directory
(`git archive HEAD src | tar -x -C /tmp/before`), then this one, both on this .venv."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MASTER = "sk-fair-share-master-0123456789"
TENANTS = "ABCDE"
MAX_OUTSTANDING = 2000  # requests the client has open at once; more arrivals are counted as skipped

CONFIG = """
server: {{master_key: "${{FAIR_MASTER_KEY}}", log_format: json}}
services:
  - {{name: fair, type: openai, endpoint: "http://127.0.0.1:{port}/v1", discover: false, breaker: {{enabled: false}},
      limits: {{max_inflight: {slots}, queue_timeout: 30}}}}
  - {{name: fifo, type: openai, endpoint: "http://127.0.0.1:{port}/v1", discover: false, breaker: {{enabled: false}},
      limits: {{max_inflight: {slots}, queue_timeout: 30, fair_share: {{enabled: false}}}}}}
models:
  fair: [fair/mock-a]
  fifo: [fifo/mock-a]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve_upstream(port: int, delay_ms: int) -> int:
    """`fair_share.py upstream PORT DELAY_MS`: the test upstream until SIGTERM."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    sys.path.insert(0, str(ROOT))
    from tests.upstreams.openai_server import OpenAIUpstream

    upstream = OpenAIUpstream(port=port, history=8).start()
    upstream.delay_ms = delay_ms
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    upstream.stop()
    return 0


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to its process group, SIGKILL after 20 s: the tests' stop_group."""
    sys.path.insert(0, str(ROOT))
    from tests.e2e.harness import stop_group

    stop_group(proc, grace=20.0)


@contextlib.contextmanager
def processes(work: Path, a: argparse.Namespace) -> Iterator[tuple[int, Path]]:
    """The upstream and the gateway: (gateway port, gateway log)."""
    up_port, gw_port = free_port(), free_port()
    config = work / "clawdbot.yaml"
    config.write_text(CONFIG.format(port=up_port, slots=a.slots))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDBOT_")}
    env.update(FAIR_MASTER_KEY=MASTER, CLAWDBOT_DATA_DIR=str(work / "data"))
    up_log, gw_log = work / "upstream.log", work / "gateway.log"
    upstream = subprocess.Popen([sys.executable, str(HERE / "fair_share.py"), "upstream", str(up_port),
                                 str(a.delay_ms)], stdout=subprocess.PIPE, stderr=up_log.open("wb"), cwd=ROOT,
                                start_new_session=True)
    gateway = None
    try:
        assert upstream.stdout is not None
        if upstream.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the upstream did not start: {up_log.read_text()[-2000:]}")
        gateway = subprocess.Popen([sys.executable, "-m", "clawdbot", "serve", "--config", str(config), "--port",
                                    str(gw_port)], stdout=gw_log.open("wb"), stderr=subprocess.STDOUT, env=env,
                                   cwd=ROOT, start_new_session=True)
        wait_ready(f"http://127.0.0.1:{gw_port}/healthz", gateway, gw_log)
        yield gw_port, gw_log
    finally:
        for proc in (gateway, upstream):
            if proc is not None:
                stop(proc)


def make_keys(port: int) -> dict[str, str]:
    keys = {}
    for t in TENANTS:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/admin/api/keys", json.dumps({"name": f"tenant-{t}"})
                                     .encode(), {"Authorization": f"Bearer {MASTER}",
                                                 "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            keys[t] = json.loads(r.read())["key"]
    return keys


class Load:
    """Open-loop Poisson arrivals per tenant; each request's status by its request id."""

    def __init__(self, port: int, keys: dict[str, str], seed: int) -> None:
        self.url = f"http://127.0.0.1:{port}/v1/chat/completions"
        self.keys = keys
        self.rng = random.Random(seed)
        self.status: dict[str, int] = {}
        self.skipped = 0
        self.outstanding = 0
        self.sent: dict[str, int] = {}  # per phase and tenant: request ids stay unique across rounds

    async def phase(self, session: Any, name: str, model: str, rates: dict[str, float], seconds: float) -> None:
        tasks: list[asyncio.Task[None]] = []
        await asyncio.gather(*(self._tenant(session, name, model, t, r, seconds, tasks) for t, r in rates.items()))
        await asyncio.gather(*tasks)

    async def _tenant(self, session: Any, phase: str, model: str, tenant: str, rate: float, seconds: float,
                      tasks: list[asyncio.Task[None]]) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        at, i = 0.0, 0
        while i < rate * seconds * 3:  # bounded whatever the random gaps
            at += self.rng.expovariate(rate)
            if at >= seconds:
                return
            await asyncio.sleep(max(0.0, start + at - loop.time()))
            n = self.sent[f"{phase}-{tenant}"] = self.sent.get(f"{phase}-{tenant}", 0) + 1
            if self.outstanding >= MAX_OUTSTANDING:
                self.skipped += 1
            else:
                tasks.append(asyncio.create_task(self._one(session, model, tenant, f"{phase}-{tenant}-{n}")))
            i += 1

    async def _one(self, session: Any, model: str, tenant: str, rid: str) -> None:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
        headers = {"Authorization": f"Bearer {self.keys[tenant]}", "X-Request-ID": rid}
        self.outstanding += 1
        try:
            async with session.post(self.url, json=body, headers=headers) as resp:
                await resp.read()
                self.status[rid] = resp.status
        except Exception:  # a timeout or a reset: counted, never retried
            self.status[rid] = 0
        finally:
            self.outstanding -= 1


async def drive(port: int, keys: dict[str, str], a: argparse.Namespace) -> tuple[Load, list[str]]:
    """`--rounds` rounds of the four phases (fifo and fair, steady and burst), each `--seconds` /
    rounds long, their order rotated from round to round: what else runs on the machine meanwhile
    falls on all four alike. The load average at each phase's start is noted."""
    import aiohttp

    load = Load(port, keys, a.seed)
    timeout = aiohttp.ClientTimeout(total=60)
    others = {t: a.rate for t in TENANTS[1:]}
    phases = [(m, p) for m in ("fifo", "fair") for p in ("steady", "burst")]
    notes = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        for model in ("fifo", "fair"):
            await load.phase(session, f"warmup.{model}", model, others, 2.0)
        for r in range(a.rounds):
            for model, phase in phases[r % 4:] + phases[:r % 4]:
                rates = {"A": a.rate * a.burst, **others} if phase == "burst" else others
                notes.append(f"round {r + 1} {model} {phase}: load average {loadavg()}")
                print(f"  {notes[-1]}", file=sys.stderr, flush=True)
                await load.phase(session, f"{phase}.{model}", model, rates, a.seconds / a.rounds)
    return load, notes


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def waits_from_log(log: Path) -> dict[str, float]:
    waits = {}
    for line in log.read_text(errors="replace").splitlines():
        if '"event":"access"' not in line:
            continue
        with contextlib.suppress(ValueError):
            rec = json.loads(line)
            waits[rec["request_id"]] = float(rec.get("queue_wait_ms") or 0.0)
    return waits


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100.0 * len(ordered)))]


def report(load: Load, waits: dict[str, float], a: argparse.Namespace) -> bool:
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for rid, status in load.status.items():
        phase_model, tenant, _ = rid.split("-")
        phase, _, model = phase_model.partition(".")
        if phase == "warmup":
            continue
        row = rows.setdefault((model, tenant, phase), {"n": 0, "refused": 0, "other": 0, "waits": []})
        row["n"] += 1
        if status == 200:
            row["waits"].append(waits.get(rid, 0.0))
        elif status == 503:
            row["refused"] += 1
        else:
            row["other"] += 1
    print(f"\nslots {a.slots}, upstream delay {a.delay_ms} ms (capacity {a.slots * 1000 / a.delay_ms:.0f}/s), "
          f"B..E {a.rate:g}/s each, A {a.rate * a.burst:g}/s in the burst, {a.seconds:g} s per phase "
          f"({a.rounds} rounds); "
          f"client skipped {load.skipped}\n")
    print("| queue | tenant | steady: n / refused | steady p50 / p99 wait (ms) | burst: n / refused | "
          "burst p50 / p99 wait (ms) | p99 burst / steady |")
    print("|---|---|---:|---:|---:|---:|---:|")
    ok = {"fair": True, "fifo": True}
    for model in ("fifo", "fair"):
        for phase in ("steady", "burst"):  # B..E together: the steadiest p99
            parts = [rows[(model, t, phase)] for t in TENANTS[1:] if (model, t, phase) in rows]
            rows[(model, "B..E", phase)] = {k: sum((p[k] for p in parts), [] if k == "waits" else 0)
                                            for k in ("n", "refused", "other", "waits")}
        for tenant in [*TENANTS, "B..E"]:
            s = rows.get((model, tenant, "steady"))
            b = rows.get((model, tenant, "burst"))
            if b is None:
                continue
            ratio = float("nan")
            if s is not None and tenant != "B..E":
                base = max(pct(s["waits"], 99), 1.0)  # below 1 ms a ratio says nothing: count 1 ms
                ratio = pct(b["waits"], 99) / base
                if ratio > 2.0 or b["refused"] or b["other"]:
                    ok[model] = False
            steady = (f"{s['n']} / {s['refused']} | {pct(s['waits'], 50):.1f} / {pct(s['waits'], 99):.1f}"
                      if s is not None else "- | -")
            other = f" (+{b['other']} failed)" if b["other"] else ""
            if tenant == "B..E" and s is not None:
                ratio = pct(b["waits"], 99) / max(pct(s["waits"], 99), 1.0)
            print(f"| {model} | {tenant} | {steady} | {b['n']} / {b['refused']}{other} | "
                  f"{pct(b['waits'], 50):.1f} / {pct(b['waits'], 99):.1f} | "
                  f"{'-' if s is None else f'{ratio:.2f}x'} |")
    for model, good in ok.items():
        verdict = "meets" if good else "misses"
        print(f"\n{model}: {verdict} the target (B..E: burst p99 within 2x of steady, none refused)")
    return ok["fair"]


def micro(before: str | None, n: int) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from clawdbot.routing import limiter as after

    builds: dict[str, Any] = {"after": after}
    if before:
        spec = importlib.util.spec_from_file_location("limiter_before", before)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        builds["before"] = mod
    ns: dict[str, list[float]] = {name: [] for name in builds}
    order = list(builds)
    for rep in range(7):  # interleaved, the order flipped each time
        for name in order if rep % 2 == 0 else order[::-1]:
            lim = builds[name].Limiter("s", 64, max_queue=64)
            t = min(timeit.repeat("lim.try_acquire(); lim.release()", globals={"lim": lim}, number=n, repeat=5))
            ns[name].append(t / n * 1e9)
    for name in ("before", "after"):
        runs = ns.get(name)
        if runs:
            print(f"{name}: try_acquire() + release() {statistics.median(runs):.1f} ns "
                  f"(min {min(runs):.1f}, max {max(runs):.1f}, 7 interleaved runs of min-of-5 x {n})")


def instructions(before: str, n: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="fair-share-cg-"))
    up_port = free_port()
    config = work / "clawdbot.yaml"
    config.write_text(f"""
server: {{master_key: "${{FAIR_MASTER_KEY}}"}}
services:
  - {{name: oa, type: openai, endpoint: "http://127.0.0.1:{up_port}/v1", discover: false,
      limits: {{max_inflight: 64}}}}
models:
  m: [oa/mock-a]
""")
    upstream = subprocess.Popen([sys.executable, str(HERE / "fair_share.py"), "upstream", str(up_port), "0"],
                                stdout=subprocess.PIPE, stderr=(work / "upstream.log").open("wb"), cwd=ROOT,
                                start_new_session=True)
    try:
        assert upstream.stdout is not None and upstream.stdout.readline().strip() == b"ready"
        for name, src in (("before", Path(before)), ("after", ROOT / "src")):
            print(f"{name} ({src}): {count(name, src, config, work, n):,.0f} instructions per request", flush=True)
    finally:
        stop(upstream)


def count(name: str, src: Path, config: Path, work: Path, n: int) -> float:
    import http.client

    port, out, log = free_port(), work / f"cg-{name}.out", work / f"gateway-{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDBOT_")}
    env.update(FAIR_MASTER_KEY=MASTER, CLAWDBOT_DATA_DIR=str(work / f"data-{name}"), PYTHONPATH=str(src))
    gw = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no",
                           sys.executable, "-m", "clawdbot", "serve", "--config", str(config), "--port", str(port)],
                          stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=work, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", gw, log, seconds=600)
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8})
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"}

        def send(k: int) -> None:
            for _ in range(k):
                conn.request("POST", "/v1/chat/completions", body, headers)
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200, resp.status

        send(300)  # warm-up: what loads at the first use
        subprocess.run(["callgrind_control", "-z", str(gw.pid)], check=True, capture_output=True)
        send(n)
        subprocess.run(["callgrind_control", "-d", str(gw.pid)], check=True, capture_output=True)
        conn.close()
        dump = next(p for p in sorted(work.glob(f"cg-{name}.out.*")))
        total = next(int(line.split()[1]) for line in dump.read_text().splitlines() if line.startswith("summary:"))
        return total / n
    finally:
        stop(gw)


def main() -> int:
    if sys.argv[1:2] == ["upstream"]:
        return serve_upstream(int(sys.argv[2]), int(sys.argv[3]))
    if sys.argv[1:2] == ["micro"]:
        mp = argparse.ArgumentParser(prog="fair_share.py micro")
        mp.add_argument("--before", help="a limiter.py of another build")
        mp.add_argument("-n", type=int, default=1_000_000)
        m = mp.parse_args(sys.argv[2:])
        micro(m.before, m.n)
        return 0
    if sys.argv[1:2] == ["instructions"]:
        ip = argparse.ArgumentParser(prog="fair_share.py instructions")
        ip.add_argument("--before", required=True, help="another build's src directory")
        ip.add_argument("-n", type=int, default=2000)
        i = ip.parse_args(sys.argv[2:])
        instructions(i.before, min(i.n, 100_000))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="per phase, over all rounds")
    ap.add_argument("--rounds", type=int, default=4, help="the four phases interleaved this many times")
    ap.add_argument("--rate", type=float, default=12.0, help="requests/s of each of B..E")
    ap.add_argument("--burst", type=float, default=10.0, help="A's rate in the burst, times --rate")
    ap.add_argument("--slots", type=int, default=4, help="limits.max_inflight of both services")
    ap.add_argument("--delay-ms", type=int, default=50, help="the upstream's time per answer")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    a = ap.parse_args()
    if not (0 < a.seconds <= 600 and 0 < a.rate <= 500 and 0 < a.burst <= 100 and a.slots >= 1 and a.delay_ms > 0
            and 1 <= a.rounds <= 20):
        ap.error("out of the bounds this bench runs in (seconds <= 600, rate <= 500, burst <= 100)")
    work = Path(tempfile.mkdtemp(prefix="fair-share-"))
    with processes(work, a) as (port, log):
        keys = make_keys(port)
        load, notes = asyncio.run(drive(port, keys, a))
    good = report(load, waits_from_log(log), a)
    loads = [float(n.rsplit(" ", 1)[1]) for n in notes]
    print(f"\nload average at the phases' starts: {min(loads):.2f} to {max(loads):.2f} (2 cores)")
    if a.keep:
        print(f"\nlogs: {work}")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
