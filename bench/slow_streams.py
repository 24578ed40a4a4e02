"""Many concurrent slow streams held by one gateway process: memory per open stream and event loop lag.

    uv run python bench/slow_streams.py                         # a quick run: 500 streams
    uv run python bench/slow_streams.py --streams 9900 --json /tmp/slow.json   # issue 17's run

Three processes on loopback, besides this one:
- the OpenAI test upstream (tests/upstreams/openai_server.py: OpenAI's SSE wire format, byte for
  byte as captured in tests/fixtures/openai/), asked for `--tokens` content chunks per stream with
  `--interval` seconds before each (its `fault:chunks=` and `fault:slow=` markers): a trickle;
- `clawdbot serve` (python -m clawdbot, the venv's) in front of it, with its limits raised so that
  they do not bind: the service's `limits.max_inflight` at 2N (no request waits in its queue, the
  connection pool may open one connection per stream), `timeouts.total` an hour, the circuit
  breaker off, no request log, the web chat's rate limits off (not used here). uvicorn's own
  `limit_concurrency` is unset (no limit) and its listen backlog 2048; the ramp is paced far below it;
- the client (`slow_streams.py client`), raw asyncio sockets on uvloop, in its own process so its
  cost is not the gateway's: it opens N streaming POST /v1/chat/completions at `--rate` a second,
  parses every chunked SSE event and checks each stream's text word for word against the reply
  the upstream plans (every content chunk, the finish reason, `data: [DONE]`).

This process raises its soft RLIMIT_NOFILE to the hard limit (the children inherit it) and refuses
an N whose 2N + 64 descriptors (a client socket and an upstream socket per stream) do not fit.

Phases: warm-up (20 short streams, then 5 s quiet: RSS "before"); the ramp to N; the hold (`--hold`
seconds once every stream has its first token: every stream is open and trickling; each lasts
(1.5 ramp + hold + 15 s) so none ends before the hold does); the streams end on their own; quiet
again (nothing in flight, 5 s: RSS "after"). Every second: the gateway's RSS (VmRSS), descriptors,
threads and CPU from /proc/PID. Loop lag: the gateway's own (metrics.py samples a 0.5 s timer's
lateness and keeps the last 64; /debug/stats gives their p50 and max, read at the end of the hold,
which is as long as the window) and, from outside, a GET /healthz on a kept-alive connection every
100 ms by a thread of this process: its round trip during the hold against its round trip when
the gateway is idle. Memory per open stream = (RSS at N - RSS before) / N, RSS at N being the
median of the samples during the hold (kernel socket buffers are not in RSS).

The upstream and the client run with their garbage collector off and the upstream with a listen
backlog of 4096: they are the load, and their own pauses would show up as the gateway's (connect
timeouts, late tokens). `--probe FILE` runs the gateway under bench/tail_causes.py's probe and
reports its garbage collections and loop callbacks over 5 ms, in the ramp and in the hold
(SLOW_GC_FREEZE=young or none in the environment: server.gc_freeze, api/heap.py; default full;
SLOW_GC_YOUNG_EVERY=SECONDS: server.gc_young_every, e.g. 0.1 (default 0: none);
SLOW_GC_THRESHOLD=700,10,100: gc.set_threshold in the gateway first;
SLOW_CENSUS=SECONDS: the probe's count of the collector's objects by type, itself a pause;
SLOW_GC_DETAIL=1: the probe's --gc-detail, each young collection's size and what a slow one kept)."""

from __future__ import annotations

import argparse
import contextlib
import gc
import http.client
import json
import math
import os
import queue
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MASTER = "sk-slow-streams-master-0123456789"
MODEL = "chat"
FDS_SPARE = 64  # descriptors the gateway holds besides its streams' sockets (measured: ~25)

GATEWAY_CONFIG = """
server:
  master_key: ${{SLOW_MASTER_KEY}}
  watch_interval: 0
  gc_freeze: {freeze}
  gc_young_every: {young_every}
services:
  - name: oa
    type: openai
    endpoint: http://127.0.0.1:{port}/v1
    discover: false
    breaker: {{enabled: false}}
    timeouts: {{total: 3600, idle: 120}}
    limits: {{max_inflight: {inflight}, max_queue: 64}}   # raised for this benchmark: never binds
models:
  chat: [oa/mock-a]
web:
  rate_limits: {{per_user_per_minute: 0, per_session_per_minute: 0, session_changes_per_minute: 0}}
"""


def prompt(tokens: int, interval: float) -> str:
    return f"slow stream fault:chunks={tokens} fault:slow={round(interval * 1000)}"


# ------------------------------------------------------------------ the client process


def client_main(a: argparse.Namespace) -> int:
    import asyncio

    import uvloop

    sys.path.insert(0, str(ROOT))
    from tests.upstreams.openai_server import words

    gc.disable()  # the client's own collections would delay its reads (it is the load, not what is measured)
    text = prompt(a.tokens, a.interval)
    expected = words(f"echo: {text}")[: a.tokens]
    expected += [f" w{i}" for i in range(len(expected), a.tokens)]
    body = json.dumps({"model": MODEL, "stream": True, "messages": [{"role": "user", "content": text}]}).encode()
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{a.port}\r\n"
               f"Authorization: Bearer {MASTER}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    counts = {"open": 0, "first": 0, "done": 0, "ok": 0, "failed": 0}
    errors: dict[str, int] = {}
    durations: list[float] = []
    ttfts: list[float] = []
    stream_timeout = (a.tokens + 3) * a.interval + a.streams / a.rate + 120

    def say(event: str, **fields: Any) -> None:
        print(json.dumps({"event": event, **fields}), flush=True)

    async def one() -> None:
        start = time.monotonic()
        got: list[str] = []
        finish = None
        done = False
        writer = None
        try:
            async with asyncio.timeout(stream_timeout):
                reader, writer = await asyncio.open_connection("127.0.0.1", a.port, limit=1 << 20)
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                if status != 200:
                    raise RuntimeError(f"status {status}")
                counts["open"] += 1
                chunked = b"transfer-encoding: chunked" in head.lower()
                buf = b""
                while True:
                    if chunked:
                        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                        if size == 0:
                            await reader.readuntil(b"\r\n")
                            break
                        buf += (await reader.readexactly(size + 2))[:-2]
                    else:
                        data = await reader.read(65536)
                        if not data:
                            break
                        buf += data
                    while b"\n\n" in buf:
                        event, buf = buf.split(b"\n\n", 1)
                        for line in event.split(b"\n"):
                            if not line.startswith(b"data:"):
                                continue
                            payload = line[5:].strip()
                            if payload == b"[DONE]":
                                done = True
                                continue
                            chunk = json.loads(payload)
                            for choice in chunk.get("choices") or ():
                                content = (choice.get("delta") or {}).get("content")
                                if content:
                                    if not got:
                                        counts["first"] += 1
                                        ttfts.append(time.monotonic() - start)
                                    got.append(content)
                                finish = choice.get("finish_reason") or finish
            if got != expected or finish != "stop" or not done or buf.strip():
                raise RuntimeError(f"incomplete: {len(got)}/{len(expected)} chunks, finish {finish}, done {done}")
            counts["ok"] += 1
            durations.append(time.monotonic() - start)
        except Exception as exc:
            counts["failed"] += 1
            key = f"{type(exc).__name__}: {exc}"[:160]
            errors[key] = errors.get(key, 0) + 1
        finally:
            counts["done"] += 1
            if writer is not None:
                writer.close()

    async def main() -> None:
        tasks = []
        t0 = time.monotonic()
        ramped = False

        async def report() -> None:
            nonlocal ramped
            while counts["done"] < a.streams:
                say("progress", **counts, t=round(time.monotonic() - t0, 1))
                if not ramped and counts["first"] + counts["failed"] >= a.streams:
                    ramped = True
                    say("ramped", t=round(time.monotonic() - t0, 1), **counts)
                await asyncio.sleep(1.0)

        reporter = asyncio.get_running_loop().create_task(report())
        for i in range(a.streams):
            delay = t0 + i / a.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.get_running_loop().create_task(one()))
        ramp_s = time.monotonic() - t0
        await asyncio.gather(*tasks)
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        if not ramped:
            say("ramped", t=round(time.monotonic() - t0, 1), **counts)
        say("result", **counts, errors=errors, ramp_s=round(ramp_s, 1),
            ttft_p50_s=round(statistics.median(ttfts), 3) if ttfts else None,
            ttft_max_s=round(max(ttfts), 3) if ttfts else None,
            duration_p50_s=round(statistics.median(durations), 2) if durations else None,
            expected_chunks=len(expected))

    uvloop.run(main())
    return 0


# ------------------------------------------------------------------ the gateway process, from outside


def proc_sample(pid: int) -> dict[str, Any]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in status.splitlines() if ":" in line}
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # the main thread (the event loop's): time on a CPU and time runnable but waiting for one (ns)
    on_cpu, waiting = (int(x) for x in Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[:2])
    return {"t": time.monotonic(), "rss_kib": int(fields["VmRSS"].split()[0]), "threads": int(fields["Threads"]),
            "loop_cpu_s": on_cpu / 1e9, "loop_wait_s": waiting / 1e9,
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "cpu_s": (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")}


class HealthProbe(threading.Thread):
    """GET /healthz every `every` seconds on one kept-alive connection; (time, round trip ms)."""

    def __init__(self, port: int, every: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.port, self.every = port, every
        self.samples: list[tuple[float, float]] = []
        self.failures = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stopping.is_set():
            start = time.monotonic()
            try:
                conn.request("GET", "/healthz")
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    raise OSError(resp.status)
                self.samples.append((start, (time.monotonic() - start) * 1000))
            except (OSError, http.client.HTTPException):
                self.failures += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.stopping.wait(max(0.0, self.every - (time.monotonic() - start)))
        conn.close()

    def between(self, t0: float, t1: float) -> list[float]:
        return [ms for t, ms in list(self.samples) if t0 <= t <= t1]


def _cpu(pid: int) -> float | None:
    try:
        return float(proc_sample(pid)["cpu_s"])
    except (OSError, KeyError):
        return None


def get_json(port: int, path: str) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {MASTER}"})
        resp = conn.getresponse()
        data: dict[str, Any] = json.loads(resp.read())
        return data
    finally:
        conn.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/healthz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except (OSError, http.client.HTTPException):
        return False


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] if values else float("nan")


def listen_overflows() -> int:
    """The kernel's count of connections a full accept queue dropped (every listener on the machine)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=False)).get("ListenOverflows", 0))
    return 0


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load()}] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def processes(work: Path, streams: int, pin: bool, probe: Path | None,
              ) -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], int]]:
    """The upstream and the gateway (under bench/tail_causes.py's probe when `probe` names its output):
    (gateway, upstream, gateway port)."""
    up_port, gw_port = free_port(), free_port()
    config = work / "clawdbot.yaml"
    freeze = os.environ.get("SLOW_GC_FREEZE", "full")  # server.gc_freeze: full, young or none
    young_every = float(os.environ.get("SLOW_GC_YOUNG_EVERY", "0"))  # server.gc_young_every
    config.write_text(GATEWAY_CONFIG.format(port=up_port, inflight=max(64, 2 * streams), freeze=freeze,
                                            young_every=young_every))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDBOT_")}
    env.update(SLOW_MASTER_KEY=MASTER, CLAWDBOT_DATA_DIR=str(work / "data"))
    gw_cpu, load_cpu = (["taskset", "-c", "1"], ["taskset", "-c", "0"]) if pin else ([], [])
    procs: list[subprocess.Popen[bytes]] = []
    try:
        upstream = subprocess.Popen([*load_cpu, sys.executable, str(HERE / "slow_streams.py"), "upstream",
                                     str(up_port)], stdout=subprocess.PIPE,
                                    stderr=(work / "upstream.log").open("wb"), cwd=ROOT, start_new_session=True)
        procs.append(upstream)
        assert upstream.stdout is not None
        if upstream.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the upstream did not start: {(work / 'upstream.log').read_text()[-2000:]}")
        census = ["--census-every", os.environ["SLOW_CENSUS"]] if os.environ.get("SLOW_CENSUS") else []
        if os.environ.get("SLOW_GC_DETAIL"):  # the probe's --gc-detail: young collections' sizes
            census.append("--gc-detail")
        if os.environ.get("SLOW_GC_THRESHOLD"):  # e.g. 700,10,100: gc.set_threshold in the gateway
            census += ["--gc-threshold", os.environ["SLOW_GC_THRESHOLD"]]
        under = ([str(HERE / "tail_causes.py"), "probe", "--out", str(probe), "--slow-ms", "5", *census, "--"]
                 if probe else ["-m", "clawdbot"])
        gateway = subprocess.Popen(
            [*gw_cpu, sys.executable, *under, "serve", "--config", str(config), "--port", str(gw_port)],
            stdout=subprocess.DEVNULL, stderr=(work / "gateway.log").open("wb"), env=env, cwd=ROOT,
            start_new_session=True)
        procs.append(gateway)
        deadline = time.monotonic() + 120
        while not healthy(gw_port):
            if gateway.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not start: {(work / 'gateway.log').read_text()[-3000:]}")
            time.sleep(0.1)
        yield gateway, upstream, gw_port
    finally:
        sys.path.insert(0, str(ROOT))
        from tests.e2e.harness import stop_group  # SIGTERM to the group, SIGKILL after the grace

        for proc in reversed(procs):
            stop_group(proc, grace=30.0)


def run_client(port: int, streams: int, rate: float, tokens: int, interval: float, pin: bool,
               ) -> tuple[subprocess.Popen[bytes], queue.Queue[dict[str, Any]]]:
    cmd = [sys.executable, str(HERE / "slow_streams.py"), "client", "--port", str(port), "--streams", str(streams),
           "--rate", str(rate), "--tokens", str(tokens), "--interval", str(interval)]
    proc = subprocess.Popen([*(["taskset", "-c", "0"] if pin else []), *cmd], stdout=subprocess.PIPE, cwd=ROOT,
                            start_new_session=True)
    events: queue.Queue[dict[str, Any]] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with contextlib.suppress(ValueError):
                events.put(json.loads(line))
        events.put({"event": "exit", "rc": proc.wait()})

    threading.Thread(target=pump, daemon=True).start()
    return proc, events


def quiet(port: int, pid: int, seconds: float, timeout: float = 120) -> dict[str, Any]:
    """Wait until nothing is in flight (but this request), then `seconds` more; the median sample."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (_find(get_json(port, "/debug/stats"), "httpInFlight") or 0) > 1:
        time.sleep(0.5)
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append(proc_sample(pid))
        time.sleep(0.5)
    rss = statistics.median(s["rss_kib"] for s in samples)
    return {**samples[-1], "rss_kib": rss}


def bench(a: argparse.Namespace) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * a.streams + FDS_SPARE
    if need > soft:
        raise SystemExit(f"{a.streams} streams need ~{need} descriptors in the gateway (a client and an upstream "
                         f"socket each); RLIMIT_NOFILE is {soft} (hard {hard}): raise it (ulimit -Hn, as root "
                         f"with CAP_SYS_RESOURCE) or ask for fewer streams")
    ramp_s = a.streams / a.rate
    # enough that no stream ends before the hold does, even when the ramp takes half as long again
    tokens = a.tokens or math.ceil((1.5 * ramp_s + a.hold + 15) / a.interval)
    out: dict[str, Any] = {"streams": a.streams, "rate": a.rate, "interval_s": a.interval, "tokens": tokens,
                           "hold_s": a.hold, "rlimit_nofile": soft, "load_start": load(), "pinned": a.pin}
    with tempfile.TemporaryDirectory(prefix="slow-streams-") as tmp, \
            processes(Path(a.logs or tmp), a.streams, a.pin, a.probe) as (gateway, upstream, port):
        pid = gateway.pid
        log(f"gateway pid {pid} on :{port}; warm-up")
        warm, events = run_client(port, 20, 50, 3, 0.01, a.pin)
        warm.wait(60)
        probe = HealthProbe(port)
        probe.start()
        time.sleep(1)
        t_idle = time.monotonic()
        before = quiet(port, pid, 5)
        idle_rtt = probe.between(t_idle, time.monotonic())
        out["before"] = before
        log(f"before: RSS {before['rss_kib'] / 1024:.1f} MiB, {before['fds']} fds; "
            f"/healthz idle p50 {pct(idle_rtt, 50):.2f} ms; ramping to {a.streams} at {a.rate}/s, {tokens} tokens "
            f"every {a.interval} s")
        overflows = listen_overflows()
        client, events = run_client(port, a.streams, a.rate, tokens, a.interval, a.pin)
        samples: list[dict[str, Any]] = []
        result: dict[str, Any] = {}
        t_ramped = t_hold_end = None
        hold_stats: dict[str, Any] = {}
        deadline = time.monotonic() + ramp_s + (tokens + 3) * a.interval + 300
        last_progress: dict[str, Any] = {}
        while time.monotonic() < deadline and not result:
            with contextlib.suppress(queue.Empty):
                while True:
                    ev = events.get_nowait()
                    if ev["event"] == "progress":
                        last_progress = ev
                    elif ev["event"] == "ramped" and t_ramped is None:
                        t_ramped = time.monotonic()
                        out["ramp_s"] = ev["t"]
                        out["load_ramped"] = load()
                        log(f"ramped in {ev['t']} s: {ev}")
                    elif ev["event"] == "result":
                        result = ev
                    elif ev["event"] == "exit" and not result:
                        raise RuntimeError(f"the client exited with {ev['rc']} before its result")
            if gateway.poll() is not None:
                raise RuntimeError("the gateway exited")
            sample = {**proc_sample(pid), "open": last_progress.get("open", 0) - last_progress.get("done", 0),
                      "upstream_cpu_s": proc_sample(upstream.pid)["cpu_s"],
                      "client_cpu_s": _cpu(client.pid)}
            samples.append(sample)
            if t_ramped is not None and t_hold_end is None and time.monotonic() >= t_ramped + a.hold:
                t_hold_end = time.monotonic()
                hold_stats = get_json(port, "/debug/stats")
                out["load_hold"] = load()
                log(f"hold over: {hold_stats}")
            if len(samples) % 5 == 0:
                log(f"open {sample['open']} RSS {sample['rss_kib'] / 1024:.1f} MiB fds {sample['fds']} "
                    f"progress {last_progress}")
            time.sleep(1.0)
        if not result:
            raise RuntimeError("the client did not finish in time")
        client.wait(30)
        after = quiet(port, pid, 5)
        probe.stopping.set()
        probe.join(5)
        assert t_ramped is not None and t_hold_end is not None, "the hold did not happen"
        held = [s for s in samples if t_ramped <= s["t"] <= t_hold_end]
        at_n = statistics.median(s["rss_kib"] for s in held)
        hold_rtt = probe.between(t_ramped, t_hold_end)
        span = held[-1]["t"] - held[0]["t"]
        cpu = (held[-1]["cpu_s"] - held[0]["cpu_s"]) / span
        up_cpu = (held[-1]["upstream_cpu_s"] - held[0]["upstream_cpu_s"]) / span
        loop_cpu = (held[-1]["loop_cpu_s"] - held[0]["loop_cpu_s"]) / span
        loop_wait = (held[-1]["loop_wait_s"] - held[0]["loop_wait_s"]) / span
        out.update(
            result=result, after=after, load_end=load(),
            rss_before_mib=round(before["rss_kib"] / 1024, 1), rss_at_n_mib=round(at_n / 1024, 1),
            rss_peak_mib=round(max(s["rss_kib"] for s in samples) / 1024, 1),
            rss_after_mib=round(after["rss_kib"] / 1024, 1),
            kib_per_stream=round((at_n - before["rss_kib"]) / a.streams, 1),
            fds_before=before["fds"], fds_at_n=max(s["fds"] for s in held), fds_after=after["fds"],
            threads_at_n=max(s["threads"] for s in held), gateway_cpu_hold=round(cpu, 3),
            upstream_cpu_hold=round(up_cpu, 3), loop_cpu_ms_per_s=round(loop_cpu * 1000),
            loop_wait_ms_per_s=round(loop_wait * 1000, 1),
            gateway_lag_p50_ms=_find(hold_stats, "loopLagP50Ms"), gateway_lag_max_ms=_find(hold_stats, "loopLagMaxMs"),
            healthz_idle_p50_ms=round(pct(idle_rtt, 50), 2), healthz_idle_p99_ms=round(pct(idle_rtt, 99), 2),
            healthz_hold_p50_ms=round(pct(hold_rtt, 50), 2), healthz_hold_p99_ms=round(pct(hold_rtt, 99), 2),
            healthz_hold_max_ms=round(max(hold_rtt, default=float("nan")), 2), healthz_hold_n=len(hold_rtt),
            healthz_hold_series=[(round(t - t_ramped, 2), round(ms, 2)) for t, ms in probe.samples
                                 if t_ramped <= t <= t_hold_end],
            healthz_failures=probe.failures, listen_overflows=listen_overflows() - overflows, samples=samples)
        if a.probe:
            out["probe_hold"] = probe_events(a.probe, t_ramped, t_hold_end)
            out["probe_ramp"] = probe_events(a.probe, 0, t_ramped)
    return out


def probe_events(path: Path, t0: float, t1: float) -> dict[str, Any]:
    """The probe's garbage collections and loop callbacks over 5 ms between t0 and t1 (monotonic s)."""
    gcs: dict[str, list[float]] = {}
    slow: dict[str, list[float]] = {}
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            for ev in json.loads(line).get("events", ()):
                if not t0 <= ev[2] / 1e9 <= t1:
                    continue
                into = gcs if ev[0] == "gc" else slow
                into.setdefault(ev[1] if ev[0] == "gc" else f"{ev[0]} {ev[1]}", []).append(ev[3] / 1e6)
    def summary(d: dict[str, list[float]]) -> dict[str, str]:
        return {k: f"{len(v)}x, max {max(v):.1f} ms, total {sum(v):.0f} ms"
                for k, v in sorted(d.items(), key=lambda kv: -max(kv[1]))[:12]}
    return {"gc": summary(gcs), "slow_callbacks": summary(slow)}


def _find(tree: Any, key: str) -> Any:
    """A key anywhere in /debug/stats' JSON."""
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        for v in tree.values():
            found = _find(v, key)
            if found is not None:
                return found
    return None


def table(r: dict[str, Any]) -> str:
    res = r["result"]
    rows = [
        ("streams held at once (N)", f"{r['streams']:,}"),
        ("ramp", f"{r['rate']:g} streams/s ({r.get('ramp_s')} s to the last first token)"),
        ("per stream", f"{r['tokens']} tokens, one every {r['interval_s']:g} s; held {r['hold_s']:g} s at N"),
        ("streams complete, every token checked", f"{res['ok']:,} / {r['streams']:,} (failed {res['failed']})"),
        ("gateway RSS before / at N / peak / after (MiB)",
         f"{r['rss_before_mib']} / {r['rss_at_n_mib']} / {r['rss_peak_mib']} / {r['rss_after_mib']}"),
        ("memory per open stream (KiB)", f"{r['kib_per_stream']}"),
        ("gateway fds before / at N / after", f"{r['fds_before']} / {r['fds_at_n']:,} / {r['fds_after']}"),
        ("CPU at N, gateway / upstream (cores)", f"{r['gateway_cpu_hold']} / {r['upstream_cpu_hold']}"),
        ("gateway loop thread at N: on a CPU / runnable but waiting for one (ms per s)",
         f"{r['loop_cpu_ms_per_s']} / {r['loop_wait_ms_per_s']}"),
        ("gateway loop lag at N, p50 / max of 64 samples (ms)",
         f"{r['gateway_lag_p50_ms']} / {r['gateway_lag_max_ms']}"),
        ("/healthz round trip idle p50 / p99 (ms)", f"{r['healthz_idle_p50_ms']} / {r['healthz_idle_p99_ms']}"),
        ("/healthz round trip at N p50 / p99 / max (ms)",
         f"{r['healthz_hold_p50_ms']} / {r['healthz_hold_p99_ms']} / {r['healthz_hold_max_ms']} "
         f"({r['healthz_hold_n']} probes)"),
        ("TTFT p50 / max (s)", f"{res['ttft_p50_s']} / {res['ttft_max_s']}"),
        ("accept-queue overflows (the machine's, during the run)", f"{r['listen_overflows']}"),
        ("load average start / at N / end", f"{r['load_start']} / {r.get('load_hold')} / {r['load_end']}"),
    ]
    return "\n".join(["| measure | value |", "|---|---:|", *(f"| {k} | {v} |" for k, v in rows)])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "upstream":
        import asyncio

        import uvloop

        sys.path.insert(0, str(HERE))
        from soak_procs import serve_upstream

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # the test server's loop: uvloop's
        # The load's side, not the gateway's: a full collection over 10,000 open streams stalls the
        # test server for ~0.5 s, its accept queue (128) overflows during the ramp and the
        # gateway's connects time out. Nothing here lives longer than the run.
        gc.disable()
        # ...and its listen backlog (aiohttp's SockSite: 128) is 4096 (net.core.somaxconn): a full
        # accept queue drops the gateway's SYNs (its connects wait for retransmissions) or answers
        # with SYN cookies (connections the server then drops: 502s).
        from aiohttp import web

        class WideSockSite(web.SockSite):
            def __init__(self, runner: web.BaseRunner, sock: Any, **kw: Any) -> None:
                super().__init__(runner, sock, **{"backlog": 4096, **kw})

        web.SockSite = WideSockSite  # type: ignore[misc]  # tests/upstreams/runner.py looks it up per call
        return serve_upstream(int(sys.argv[2]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", nargs="?", default="bench", choices=["bench", "client"])
    ap.add_argument("--streams", type=int, default=500)
    ap.add_argument("--rate", type=float, default=250.0, help="streams opened per second during the ramp")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between a stream's tokens")
    ap.add_argument("--tokens", type=int, default=0, help="tokens per stream (0: enough to outlast ramp and hold)")
    ap.add_argument("--hold", type=float, default=32.0, help="seconds held at N (the gateway's lag window is 32 s)")
    ap.add_argument("--pin", action="store_true", help="gateway on CPU 1, upstream and client on CPU 0")
    ap.add_argument("--port", type=int, default=0, help="client: the gateway's port")
    ap.add_argument("--probe", type=Path, help="run the gateway under bench/tail_causes.py's probe (garbage "
                    "collections, loop callbacks over 5 ms) writing JSON lines here")
    ap.add_argument("--logs", help="a directory for the gateway's and the upstream's logs and config (default: "
                    "a temporary one, removed)")
    ap.add_argument("--json", help="write the whole result, every sample included, here")
    a = ap.parse_args()
    if a.mode == "client":
        return client_main(a)
    r = bench(a)
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=1))
    print(table(r))
    for key in ("probe_ramp", "probe_hold"):
        if key in r:
            print(f"{key}:", json.dumps(r[key], indent=1))
    if r["result"]["errors"]:
        print("errors:", json.dumps(r["result"]["errors"], indent=1))
    return 0 if r["result"]["ok"] == a.streams else 1


if __name__ == "__main__":
    sys.exit(main())
