"""Where the gateway's tail latency at concurrency 1 comes from: each slow request, matched with what
happened in and around the gateway while it was answered.

    .venv/bin/python bench/tail_causes.py                 # 5,000 requests a side, ~1.5 min
    .venv/bin/python bench/tail_causes.py --n 20000 --callbacks --json /tmp/tail.json
    .venv/bin/python bench/tail_causes.py --stream --n 3000      # streams: the time to the first token

Like ../shared/bench's c=1 latency test: the Go mock (`/tmp/bench-bin/mockllm`, ../shared/bench
setup.sh) and this client on CPU 0, the gateway (`clawdbot serve` with CLAWDBOT_MODEL_ENDPOINT and
a master key, as bench/gateway.sh runs it; `--config FILE` for another) and nginx (a plain reverse
proxy, the reference hop; `--no-nginx` leaves it out) on CPU 1. First --preload (20) seconds of
`wrk -c64` against each target, as the harness runs its c=64 tests before c=1; then sequential
non-stream requests over one kept-alive connection per target, in rounds of 100 whose order
rotates: the mock directly, the gateway, nginx. *Added* pN = target pN - direct pN. With --stream
the requests are streams (3 content chunks 1 ms apart) and what is measured, and attributed, is
the time to the first content chunk (as ../shared/bench's TTFT); the rest of each stream is read
after the measurement.

Around every request the client reads /proc/<pid>/task/<tid>/schedstat of each thread of the
target, the mock and itself (time on a CPU, and time runnable but waiting for one). The gateway
runs under `probe` (this file's other half: `python bench/tail_causes.py probe --out F -- serve
...`), which records with CLOCK_MONOTONIC time stamps the client shares: every garbage collection
(gc.callbacks: generation, wall and CPU time); every timer callback on the event loop
(loop.call_later/call_at through a uvloop.Loop subclass: the log's hand-over, the pool's waits,
sleeps of background tasks, ...: count, wall and CPU time by name, and each one slower than
--slow-ms; a few per request, ~1-2 us each); every upstream connect (create_connection); with
--callbacks every loop callback (call_soon: task steps, future callbacks) slower than --slow-ms
(~1 us a callback more: compare the run's p50). Each gateway request at or over its p99 is
labelled with what overlapped it:

  gc genN                                 a collection of generation N ran during the request
  timer NAME / callback NAME / connect    a slow loop callback or an upstream connect overlapped it
  run-queue (own thread NAME)             the loop thread waited for CPU 1 while one of the
                                          gateway's own threads (the log writer, ...) ran
  run-queue (other process)               the loop thread waited for CPU 1, taken by another
                                          process (the VM's daemons, other work on CPU 1)
  run-queue (mock|client, on the load CPU)   the mock or this client waited for CPU 0
  loop work (unattributed)                the loop thread was on the CPU longer than a request's
                                          median, with no recorded event to name (--callbacks names
                                          more of it)
  first after >= 5 ms idle (a new round)  the first request after another target's round
  outside the gateway                     none of these (the kernel's loopback, the VM)

and the report gives, per cause, how many tail requests carry it and the p99 had every slow request
it touched taken the median instead ("p99 without"; causes overlap, so the gains do not add up):
what removing that cause would buy. nginx gets the same labels from its worker's schedstat.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import contextlib
import gc
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MOCK = "/tmp/bench-bin/mockllm"
SHARED = Path(os.environ.get("CLAWDBOT_SHARED_BENCH", ROOT.parent / "shared" / "bench"))
BODY = b'{"model":"mock-model","messages":[{"role":"user","content":"Say hello. mock:chunks=16"}],"max_tokens":32}'
STREAM_BODY = (b'{"model":"mock-model","stream":true,"messages":[{"role":"user",'
               b'"content":"Count. mock:chunks=3 mock:gap=1"}]}')
FIRST_TOKEN = b'"content":"tok'  # the mock's content chunks ("tok "); its first event's content is ""
KEY = "sk-bench"
IDLE_MS = 5.0  # a target that answered nothing for this long (another target's round) starts cold
now_ns = time.monotonic_ns  # CLOCK_MONOTONIC: the same clock in the gateway and in this client


# ------------------------------------------------------------------ the probe, inside the gateway


class Probe:
    """Records garbage collections, slow loop callbacks and connects, and samples the loop's task
    count; a thread writes it all as JSON lines to `out` every `interval` seconds."""

    def __init__(self, out: Path, slow_ms: float, callbacks: bool, interval: float, census_every: float = 0,
                 gc_detail: bool = False) -> None:
        self.out = out
        self.census_every = census_every  # seconds between counts of the collector's objects by type
        self._census_at = time.monotonic() + census_every
        self.slow_ns = int(slow_ms * 1e6)
        self.callbacks = callbacks
        self.interval = interval
        self.events: collections.deque[list[Any]] = collections.deque(maxlen=1_000_000)
        self.timers: dict[str, list[int]] = {}  # timer callback name -> [count, total ns, max ns]
        self.loop: asyncio.AbstractEventLoop | None = None
        self._gc_started = self._gc_cpu = 0
        self._gc_walks = -1  # the objects a young collection walks (with gc_detail)
        self.gc_detail = gc_detail  # --gc-detail: young collections' sizes, and what a slow one kept

    def install(self) -> None:
        gc.callbacks.append(self._gc)
        import uvloop

        self.loop_class = probed_loop_class(self, uvloop.Loop)
        uvloop.new_event_loop = self._new_loop  # uvicorn's loop="uvloop" factory calls this

    def _new_loop(self) -> asyncio.AbstractEventLoop:
        loop: asyncio.AbstractEventLoop = self.loop_class()
        self.loop = loop
        threading.Thread(target=self._sampler, name="tail-probe", daemon=True).start()
        return loop

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            generation = info["generation"]  # what it walks: its generation and the younger ones
            self._gc_walks = sum(len(gc.get_objects(generation=g)) for g in range(generation + 1)) if (
                self.gc_detail and generation < 2) else -1
            self._gc_cpu = time.thread_time_ns()
            self._gc_started = now_ns()
        else:  # wall time, objects collected, and the thread's CPU time: less than the wall when preempted
            took = now_ns() - self._gc_started
            event = ["gc", f"gen{info['generation']}", self._gc_started, took, info.get("collected", 0),
                     time.thread_time_ns() - self._gc_cpu]
            if self._gc_walks >= 0:
                event.append(self._gc_walks)
                if took >= self.slow_ns and took >= 5_000_000:
                    event.append(survivors(info["generation"]))
            self.events.append(event)

    def timed(self, kind: str, callback: Callable[..., Any]) -> Callable[..., Any]:
        slow, events, timers = self.slow_ns, self.events, self.timers

        timer = kind == "timer"

        def run(*args: Any) -> Any:
            cpu = time.thread_time_ns() if timer else 0
            started = now_ns()
            try:
                return callback(*args)
            finally:
                took = now_ns() - started
                if timer:  # timers are few: their CPU time too (a syscall), apart from preemption
                    cpu = time.thread_time_ns() - cpu
                    name = callback_name(callback)
                    agg = timers.get(name)
                    if agg is None:
                        agg = timers[name] = [0, 0, 0, 0, 0]
                    agg[0] += 1
                    agg[1] += took
                    agg[2] = max(agg[2], took)
                    agg[3] += cpu
                    agg[4] = max(agg[4], cpu)
                    if took >= slow:
                        events.append([kind, name, started, took])
                elif took >= slow:
                    events.append([kind, callback_name(callback), started, took])

        return run

    def _sampler(self) -> None:
        with self.out.open("a") as out:
            while True:
                time.sleep(self.interval)
                loop = self.loop
                if loop is None or loop.is_closed():
                    return
                sample: dict[str, Any] = {}
                done = threading.Event()
                asked = now_ns()

                def take(sample: dict[str, Any] = sample, asked: int = asked, done: threading.Event = done) -> None:
                    sample["lag_ms"] = (now_ns() - asked) / 1e6
                    tasks = asyncio.all_tasks()
                    sample["tasks"] = len(tasks)
                    sample["task_names"] = collections.Counter(task_name(t) for t in tasks).most_common(12)
                    if self.census_every and time.monotonic() >= self._census_at:
                        self._census_at = time.monotonic() + self.census_every
                        sample["census"] = census()
                    done.set()

                try:
                    loop.call_soon_threadsafe(take)
                except RuntimeError:  # the loop closed meanwhile
                    return
                done.wait(5)
                events = []
                with contextlib.suppress(IndexError):
                    for _ in range(len(self.events)):
                        events.append(self.events.popleft())
                sample.update(t=now_ns(), gc_count=gc.get_count(), events=events,
                              timers={k: list(v) for k, v in list(self.timers.items())},
                              threads={t.native_id: t.name for t in threading.enumerate()})
                out.write(json.dumps(sample) + "\n")
                out.flush()


def survivors(generation: int) -> dict[str, Any]:
    """After a slow young collection: what it moved to the next generation, by type, and the
    biggest containers among them (a young container refers to everything it holds, and the
    collection visits every one of those)."""
    kept = gc.get_objects(generation=min(generation + 1, 2))
    types = collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in kept)
    sized = sorted(((len(o), f"{type(o).__module__}.{type(o).__qualname__}") for o in kept
                    if isinstance(o, (list, dict, set, frozenset, tuple, collections.deque))), reverse=True)
    return {"kept": len(kept), "types": types.most_common(8), "biggest": sized[:5]}


def census() -> dict[str, Any]:
    """What a full collection walks: the tracked objects of each generation (frozen ones are not
    walked), and the commonest types in the oldest, with the modules that define them."""
    oldest = gc.get_objects(generation=2)
    types = collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in oldest)
    modules = collections.Counter(type(o).__module__.split(".")[0] for o in oldest)
    return {"gen_sizes": [len(gc.get_objects(generation=g)) for g in (0, 1)] + [len(oldest)],
            "frozen": gc.get_freeze_count(), "types": types.most_common(15), "modules": modules.most_common(10)}


def probed_loop_class(probe: Probe, base: type) -> type:
    class ProbedLoop(base):  # type: ignore[misc, valid-type]
        def call_later(self, delay: float, callback: Callable[..., Any], *args: Any, context: Any = None) -> Any:
            return super().call_later(delay, probe.timed("timer", callback), *args, context=context)

        def call_at(self, when: float, callback: Callable[..., Any], *args: Any, context: Any = None) -> Any:
            return super().call_at(when, probe.timed("timer", callback), *args, context=context)

        def call_soon(self, callback: Callable[..., Any], *args: Any, context: Any = None) -> Any:
            if probe.callbacks:
                callback = probe.timed("callback", callback)
            return super().call_soon(callback, *args, context=context)

        async def create_connection(self, *args: Any, **kw: Any) -> Any:
            started = now_ns()
            try:
                return await super().create_connection(*args, **kw)
            finally:
                probe.events.append(["connect", f"{kw.get('host', args[1] if len(args) > 1 else '?')}:"
                                     f"{kw.get('port', args[2] if len(args) > 2 else '?')}", started,
                                     now_ns() - started])

    return ProbedLoop


def callback_name(cb: Any) -> str:
    owner = getattr(cb, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return "task " + task_name(owner)
    fn = getattr(cb, "__func__", cb)
    name = getattr(fn, "__qualname__", None)
    if name is None:
        return type(cb).__name__
    return f"{name} ({type(owner).__name__})" if owner is not None and not isinstance(owner, type) else name


def task_name(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", None) or type(coro).__name__


def run_probe(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="tail_causes.py probe")
    ap.add_argument("--out", type=Path, required=True, help="JSON lines: samples and events")
    ap.add_argument("--slow-ms", type=float, default=0.2)
    ap.add_argument("--callbacks", action="store_true", help="time every call_soon callback too")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    ap.add_argument("--gc-threshold", help="gc.set_threshold(A, B, C) before the gateway starts, e.g. 50000,20,100")
    ap.add_argument("--gc-detail", action="store_true",
                    help="each young collection's size, and what a slow one (over 5 ms) moved on")
    ap.add_argument("--census-every", type=float, default=0,
                    help="seconds between counts of the oldest generation's objects by type (0: none; ~ms each)")
    ap.add_argument("clawdbot", nargs=argparse.REMAINDER, help="-- then the clawdbot command line")
    a = ap.parse_args(argv)
    args = a.clawdbot[1:] if a.clawdbot[:1] == ["--"] else a.clawdbot
    if a.gc_threshold:
        gc.set_threshold(*(int(x) for x in a.gc_threshold.split(",")))
    Probe(a.out, a.slow_ms, a.callbacks, a.interval, a.census_every, a.gc_detail).install()
    from clawdbot.cli.main import main

    return main(args)


# ------------------------------------------------------------------ processes


NGINX_CONF = """worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/b; proxy_temp_path {dir}/p; fastcgi_temp_path {dir}/f;
  uwsgi_temp_path {dir}/u; scgi_temp_path {dir}/s;
  upstream mock {{ server 127.0.0.1:{mock}; keepalive 64; keepalive_requests 100000000; }}
  keepalive_requests 100000000;
  keepalive_timeout 3600s;
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffering off; proxy_request_buffering off; }}
  }}
}}
"""


@contextlib.contextmanager
def started(cmd: list[str], cpu: int, env: dict[str, str] | None = None, log: Path | None = None,
            ) -> Iterator[subprocess.Popen[bytes]]:
    out = log.open("wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(["taskset", "-c", str(cpu), *cmd], env={**os.environ, **(env or {})}, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        if log:
            out.close()  # type: ignore[union-attr]


def wait_port(port: int, seconds: float = 60, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {seconds}s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def worker_pid(master: int) -> int:
    """nginx's worker: the master's child (the bench runs one)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for task in Path(f"/proc/{master}/task").iterdir():
            kids = (task / "children").read_text().split()
            if kids:
                return int(kids[0])
        time.sleep(0.05)
    raise RuntimeError("nginx started no worker")


# ------------------------------------------------------------------ the client


class Threads:
    """schedstat of every thread of a process, read with one pread each (~1 us)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.fds: dict[int, int] = {}
        self.refresh()

    def refresh(self) -> None:
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            tid = int(task.name)
            if tid not in self.fds:
                with contextlib.suppress(OSError):
                    self.fds[tid] = os.open(task / "schedstat", os.O_RDONLY)

    def read(self) -> dict[int, tuple[int, int]]:
        out = {}
        for tid, fd in self.fds.items():
            with contextlib.suppress(OSError):
                exec_ns, wait_ns, _ = os.pread(fd, 128, 0).split()
                out[tid] = (int(exec_ns), int(wait_ns))
        return out


class Target:
    def __init__(self, name: str, port: int, prefix: str, pid: int | None, sides: dict[str, Threads],
                 stream: bool = False) -> None:
        self.name, self.port = name, port
        self.stream = stream
        body = STREAM_BODY if stream else BODY
        self.sides = sides  # the mock's and this client's threads: their CPU waits, on the load CPU
        self.last_end = 0
        self.path = f"{prefix}/chat/completions"
        self.threads = Threads(pid) if pid else None
        self.sock = self.connect()
        self.request = (f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {KEY}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        self.buf = b""
        self._chunked = False
        self.samples: list[dict[str, Any]] = []
        self.reconnects = 0

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        return sock

    def one(self) -> tuple[int, int, int]:
        """One request: (status, sent, answered) in monotonic ns; a stream is answered at its
        first content chunk, and the rest of it is left for finish()."""
        t0 = now_ns()
        self.sock.sendall(self.request)
        head = self._until(b"\r\n\r\n")
        status = int(head[9:12])
        fields = {k.strip().lower(): v.strip() for k, _, v in
                  (ln.partition(b":") for ln in head.split(b"\r\n")[1:])}
        self._chunked = b"content-length" not in fields
        if not self._chunked:
            self._exactly(int(fields[b"content-length"]))
            return status, t0, now_ns()
        if not self.stream or status != 200:
            self.finish()
            return status, t0, now_ns()
        while True:
            chunk = self._chunk()
            if not chunk:
                raise RuntimeError(f"{self.name}: a stream without content")
            if FIRST_TOKEN in chunk:
                return status, t0, now_ns()

    def _chunk(self) -> bytes:
        size = int(self._until(b"\r\n").split(b";")[0], 16)
        return self._exactly(size + 2)[:size]

    def finish(self) -> None:
        """The rest of a chunked answer."""
        if self._chunked:
            while self._chunk():
                pass
            self._chunked = False

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError(f"{self.name} closed the connection")
        self.buf += data

    def _until(self, sep: bytes) -> bytes:
        while (i := self.buf.find(sep)) < 0:
            self._fill()
        out, self.buf = self.buf[:i], self.buf[i + len(sep):]
        return out

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def measure(self) -> None:
        for attempt in range(3):
            side_before = {name: t.read() for name, t in self.sides.items()}
            before = self.threads.read() if self.threads else {}
            try:
                status, t0, t1 = self.one()
                break
            except ConnectionError:  # the server ended a kept-alive connection: a new one, not measured
                self.sock.close()
                self.sock = self.connect()
                self.reconnects += 1
                if attempt == 2:
                    raise
        after = self.threads.read() if self.threads else {}
        side_after = {name: t.read() for name, t in self.sides.items()}
        self.finish()
        if status != 200:
            raise RuntimeError(f"{self.name}: HTTP {status}")
        deltas = {tid: (after[tid][0] - b[0], after[tid][1] - b[1]) for tid, b in before.items() if tid in after}
        side_wait = {name: max((side_after[name][tid][1] - w for tid, (_, w) in b.items() if tid in side_after[name]),
                               default=0) for name, b in side_before.items()}
        idle = (t0 - self.last_end) / 1e6 if self.last_end else 0.0
        self.last_end = t1
        self.samples.append({"t0": t0, "t1": t1, "ms": (t1 - t0) / 1e6, "threads": deltas, "side_wait": side_wait,
                             "idle_ms": idle})


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


# ------------------------------------------------------------------ attribution


def wait_for_sample(path: Path, after_ns: int, seconds: float = 10) -> None:
    """Until the probe has written a sample taken after `after_ns` (one a second), bounded."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, IndexError):
            if json.loads(path.read_text().splitlines()[-1])["t"] > after_ns:
                return
        time.sleep(0.1)


def load_probe(path: Path) -> tuple[list[list[Any]], dict[str, list[int]], dict[int, str]]:
    events: list[list[Any]] = []
    timers: dict[str, list[int]] = {}
    names: dict[int, str] = {}
    if not path.exists():
        return events, timers, names
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            s = json.loads(line)
            events += s["events"]
            timers = s["timers"]
            names.update({int(k): v for k, v in s["threads"].items()})
    return events, timers, names


def causes_of(sample: dict[str, Any], main_tid: int, exec_median: float, events: list[list[Any]],
              starts: list[int], names: dict[int, str], wait_ms: float, busy_ms: float) -> list[str]:
    t0, t1 = sample["t0"], sample["t1"]
    found = []
    # events are sorted by start and short (a collection, a callback): those that began up to 100 ms
    # before the request are the only ones that can still be running in it
    for ev in events[bisect.bisect_left(starts, t0 - 100_000_000):bisect.bisect_right(starts, t1)]:
        if ev[2] + ev[3] >= t0:
            found.append(f"{ev[0]} {ev[1]}")
    main = sample["threads"].get(main_tid)
    if main is not None:
        exec_ns, wait_ns = main
        if wait_ns / 1e6 >= wait_ms:
            own = [(d[0], tid) for tid, d in sample["threads"].items() if tid != main_tid and d[0] / 1e6 >= wait_ms / 2]
            if own:
                tid = max(own)[1]
                found.append(f"run-queue (own thread {names.get(tid, tid)})")
            else:
                found.append("run-queue (other process)")
        if (exec_ns - exec_median) / 1e6 >= busy_ms and not any(f.startswith(("gc", "timer", "callback", "connect"))
                                                               for f in found):
            found.append("loop work (unattributed)")
    for side, waited in sample["side_wait"].items():
        if waited / 1e6 >= wait_ms:
            found.append(f"run-queue ({side}, on the load CPU)")
    if sample["idle_ms"] >= IDLE_MS:
        found.append(f"first after >= {IDLE_MS:g} ms idle (a new round)")
    return sorted(set(found)) or ["outside the gateway"]


def attribute(target: Target, direct: Target, events: list[list[Any]], names: dict[int, str],
              wait_ms: float, busy_ms: float) -> dict[str, Any]:
    lat = [s["ms"] for s in target.samples]
    p50, p99 = pct(lat, 50), pct(lat, 99)
    main_tid = target.threads.pid if target.threads else 0
    execs = [s["threads"][main_tid][0] for s in target.samples if main_tid in s["threads"]]
    exec_median = statistics.median(execs) if execs else 0.0
    events = sorted(events, key=lambda e: e[2])
    starts = [e[2] for e in events]
    # every slow request labelled once: the tail (>= p99) and whatever else is over p50 + busy_ms
    slow = [s for s in target.samples if s["ms"] >= min(p99, p50 + busy_ms)]
    labels = {id(s): causes_of(s, main_tid, exec_median, events, starts, names, wait_ms, busy_ms) for s in slow}
    tail = [s for s in slow if s["ms"] >= p99]
    by_cause: dict[str, int] = collections.Counter(c for s in tail for c in labels[id(s)])
    rows = []
    for cause, hits in by_cause.most_common():
        # the p99 had every slow request this cause touched (not only those in the tail) taken p50
        without = [p50 if cause in labels.get(id(s), ()) else s["ms"] for s in target.samples]
        rows.append({"cause": cause, "tail_requests": hits, "of_tail": len(tail),
                     "p99_without_ms": round(pct(without, 99), 3), "p99_gain_ms": round(p99 - pct(without, 99), 3)})
    d = [s["ms"] for s in direct.samples]
    waits = [s["threads"][main_tid][1] / 1e6 for s in target.samples if main_tid in s["threads"]]
    cold = [s["ms"] for s in target.samples if s["idle_ms"] >= IDLE_MS]
    warm = [s["ms"] for s in target.samples if s["idle_ms"] < IDLE_MS]
    return {"target": target.name, "n": len(lat), "p50_ms": round(p50, 3), "p99_ms": round(p99, 3),
            "first_of_round_p50_ms": round(pct(cold, 50), 3) if cold else None,
            "rest_p50_ms": round(pct(warm, 50), 3) if warm else None,
            "rest_p99_ms": round(pct(warm, 99), 3) if warm else None,
            "added_p50_ms": round(p50 - pct(d, 50), 3), "added_p99_ms": round(p99 - pct(d, 99), 3),
            "loop_cpu_per_request_ms": round(exec_median / 1e6, 3),
            "requests_with_runqueue_wait": sum(w >= wait_ms for w in waits), "causes": rows}


def gc_summary(events: list[list[Any]]) -> dict[str, Any]:
    """Per generation: count, and the pauses' wall time (total, max) and CPU time (max: a wall time
    much longer than the CPU time was the thread waiting for a CPU, not the collector working)."""
    out: dict[str, Any] = {}
    for ev in events:
        if ev[0] == "gc":
            g = out.setdefault(ev[1], {"count": 0, "total_ms": 0.0, "max_ms": 0.0, "max_cpu_ms": 0.0})
            g["count"] += 1
            g["total_ms"] = round(g["total_ms"] + ev[3] / 1e6, 3)
            g["max_ms"] = round(max(g["max_ms"], ev[3] / 1e6), 3)
            g["max_cpu_ms"] = round(max(g["max_cpu_ms"], ev[5] / 1e6), 3)
    return out


def print_report(report: dict[str, Any]) -> None:
    what = "streams, time to the first token" if report.get("stream") else "non-stream"
    print(f"\nc=1 {what}, {report['n']} requests a side after {report['preload_s']:g} s of c=64 load"
          f"{', gc threshold ' + report['gc_threshold'] if report['gc_threshold'] else ''}; "
          f"direct p50 {report['direct_p50_ms']} ms, p99 {report['direct_p99_ms']} ms")
    for r in report["targets"]:
        print(f"\n{r['target']}: added p50 {r['added_p50_ms']} ms, added p99 {r['added_p99_ms']} ms "
              f"(p99 {r['p99_ms']} ms); loop thread {r['loop_cpu_per_request_ms']} ms CPU a request (median); "
              f"{r['requests_with_runqueue_wait']} requests waited for the CPU; p50 {r['first_of_round_p50_ms']} ms "
              f"for a round's first request, {r['rest_p50_ms']} ms (p99 {r['rest_p99_ms']}) for the others")
        print(f"  {'cause (requests at or over p99)':<58} {'in tail':>8} {'p99 without':>12} {'gain':>7}")
        for c in r["causes"]:
            print(f"  {c['cause'][:58]:<58} {c['tail_requests']:>4}/{c['of_tail']:<3} "
                  f"{c['p99_without_ms']:>10.3f}ms {c['p99_gain_ms']:>6.3f}")
    print("\ngarbage collections in the gateway during the measured requests:", report["gc"] or "none")
    slow = sorted(report["timers"].items(), key=lambda kv: -kv[1][1])[:8]
    if slow:
        print("timer callbacks on the gateway's loop (count; wall ms total, max; CPU ms total, max):")
        for name, (n, total, worst, cpu, cpu_worst) in slow:
            print(f"  {name[:60]:<60} {n:>7} {total / 1e6:>9.2f} {worst / 1e6:>7.3f} {cpu / 1e6:>9.2f} "
                  f"{cpu_worst / 1e6:>7.3f}")
    if report["slow_events"]:
        print(f"slowest loop events (> {report['slow_ms']} ms): ")
        for kind, name, n, worst in report["slow_events"][:10]:
            print(f"  {kind:<9} {name[:62]:<62} {n:>5}x max {worst:.3f} ms")


# ------------------------------------------------------------------ the run


def run(a: argparse.Namespace) -> dict[str, Any]:
    if not os.access(MOCK, os.X_OK):
        raise SystemExit(f"{MOCK} missing: run `bash ../shared/bench/setup.sh --no-litellm` first")
    os.sched_setaffinity(0, {a.load_cpu})
    work = Path(a.out or tempfile.mkdtemp(prefix="tail-causes-"))
    work.mkdir(parents=True, exist_ok=True)
    probe_out = work / "probe.jsonl"
    probe_out.unlink(missing_ok=True)
    mock_port, gw_port, ngx_port = free_port(), free_port(), free_port()
    gw_cmd = [sys.executable, str(Path(__file__).resolve()), "probe", "--out", str(probe_out),
              "--slow-ms", str(a.slow_ms), *(["--callbacks"] if a.callbacks else []),
              *(["--gc-threshold", a.gc_threshold] if a.gc_threshold else []), "--",
              "serve", "--port", str(gw_port), *(["--config", a.config] if a.config else [])]
    env = {"CLAWDBOT_MODEL_ENDPOINT": f"http://127.0.0.1:{mock_port}/v1", "CLAWDBOT_MASTER_KEY": KEY,
           "BENCH_MOCK_BASE": f"http://127.0.0.1:{mock_port}/v1", "CLAWDBOT_DATA_DIR": str(work / "data")}
    with contextlib.ExitStack() as stack:
        mock = stack.enter_context(started([MOCK, "-addr", f"127.0.0.1:{mock_port}"], a.load_cpu))
        wait_port(mock_port, proc=mock)
        gw = stack.enter_context(started(gw_cmd, a.gw_cpu, env, work / "gateway.log"))
        wait_port(gw_port, proc=gw)
        sides = {"mock": Threads(mock.pid), "client": Threads(os.getpid())}
        targets = [Target("direct", mock_port, "/v1", None, sides, a.stream),
                   Target("clawdbot", gw_port, "/v1", gw.pid, sides, a.stream)]
        if a.nginx and shutil.which("nginx"):
            ngx_dir = work / "nginx"
            ngx_dir.mkdir(exist_ok=True)
            (ngx_dir / "nginx.conf").write_text(NGINX_CONF.format(dir=ngx_dir, mock=mock_port, port=ngx_port))
            ngx = stack.enter_context(started(["nginx", "-p", str(ngx_dir), "-e", str(ngx_dir / "nginx-error.log"),
                                               "-c", str(ngx_dir / "nginx.conf")], a.gw_cpu))
            wait_port(ngx_port)
            targets.append(Target("nginx", ngx_port, "/v1", worker_pid(ngx.pid), sides, a.stream))
        if a.preload:  # as ../shared/bench measures c=1 after its c=64 runs: what load leaves behind
            wrk = shutil.which("wrk")
            if wrk is None:
                raise SystemExit("--preload needs wrk (../shared/bench/setup.sh installs it)")
            for t in targets[1:]:
                subprocess.run(["taskset", "-c", str(a.load_cpu), wrk, "-t1", "-c64", f"-d{a.preload:g}s", "-s",
                                str(SHARED / "post.lua"), f"http://127.0.0.1:{t.port}{t.path}"],
                               check=True, capture_output=True, env={**os.environ, "BENCH_KEY": KEY})
        for t in targets:  # warm-up: connections, lazy imports, the log writer's thread
            for _ in range(a.warmup):
                t.measure()
            t.samples.clear()
            if t.threads:
                t.threads.refresh()
        for side in sides.values():
            side.refresh()
        started_ns = now_ns()
        rounds = max(1, a.n // 100)
        for r in range(rounds):
            order = targets[r % len(targets):] + targets[:r % len(targets)]
            for t in order:
                for _ in range(100):
                    t.measure()
        ended_ns = now_ns()
        wait_for_sample(probe_out, ended_ns)
    events, timers, names = load_probe(probe_out)
    events = [e for e in events if started_ns <= e[2] <= ended_ns]
    direct = targets[0]
    d = [s["ms"] for s in direct.samples]
    slow: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    for e in events:
        if e[0] != "gc":
            slow[(e[0], e[1])].append(e[3] / 1e6)
    report = {"stream": a.stream, "preload_s": a.preload, "gc_threshold": a.gc_threshold, "n": len(d),
              "direct_p50_ms": round(pct(d, 50), 3), "direct_p99_ms": round(pct(d, 99), 3),
              "targets": [attribute(t, direct, events if t.name == "clawdbot" else [],
                                    names if t.name == "clawdbot" else {}, a.wait_ms, a.busy_ms)
                          for t in targets[1:]],
              "gc": gc_summary(events), "timers": timers, "slow_ms": a.slow_ms,
              "slow_events": sorted(([k[0], k[1], len(v), round(max(v), 3)] for k, v in slow.items()),
                                    key=lambda x: -x[3]),
              "callbacks_timed": a.callbacks, "work_dir": str(work)}
    if a.samples:  # one line a request: target, ms, idle before it, the loop thread's CPU and run-queue ms
        with open(a.samples, "w") as f:
            for t in targets:
                main_tid = t.threads.pid if t.threads else 0
                for x in t.samples:
                    exec_ns, wait_ns = x["threads"].get(main_tid, (0, 0))
                    f.write(json.dumps([t.name, round(x["ms"], 4), round(x["idle_ms"], 2), round(exec_ns / 1e6, 4),
                                        round(wait_ns / 1e6, 4)]) + "\n")
    return report


def main() -> int:
    if sys.argv[1:2] == ["probe"]:
        return run_probe(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000, help="measured requests per target (rounds of 100)")
    ap.add_argument("--warmup", type=int, default=500, help="requests per target before measuring")
    ap.add_argument("--config", help="a clawdbot config (default: CLAWDBOT_MODEL_ENDPOINT, as bench/gateway.sh)")
    ap.add_argument("--callbacks", action="store_true", help="also time every call_soon callback (~1 us each)")
    ap.add_argument("--slow-ms", type=float, default=0.2, help="loop events longer than this are recorded")
    ap.add_argument("--wait-ms", type=float, default=0.2,
                    help="run-queue wait of the loop thread during a request that counts as a cause")
    ap.add_argument("--busy-ms", type=float, default=0.3,
                    help="loop-thread CPU over the median during a request that counts as extra work")
    ap.add_argument("--no-nginx", dest="nginx", action="store_false")
    ap.add_argument("--stream", action="store_true", help="streams: measure the time to the first content chunk")
    ap.add_argument("--preload", type=float, default=20.0,
                    help="seconds of wrk -c64 against each target first, as ../shared/bench runs before c=1 (0: none)")
    ap.add_argument("--gc-threshold", help="the gateway's gc.set_threshold(A, B, C) (an experiment: e.g. 50000,20,100)")
    ap.add_argument("--gw-cpu", type=int, default=1)
    ap.add_argument("--load-cpu", type=int, default=0)
    ap.add_argument("--out", help="work directory (logs, probe.jsonl); default a new temporary one")
    ap.add_argument("--json", help="write the report here too")
    ap.add_argument("--samples", help="write every measured request here (JSON lines)")
    a = ap.parse_args()
    report = run(a)
    print_report(report)
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
