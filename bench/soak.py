"""Soak: a real gateway process under a steady mixed load for a long time, watched for leaks.

    bash bench/soak.sh                                  # 10 minutes at 80% of the measured maximum
    bash bench/soak.sh --rps 300                        # a given rate instead of measuring the maximum
    bash bench/soak.sh --duration 60 --warmup 20 --max-seconds 15 --sample-every 2 --json /tmp/soak.json   # CI's

What runs, all on loopback: the OpenAI test upstream (tests/upstreams/openai_server.py, OpenAI's
wire format, with its fault markers) in a process of its own; `clawdbot serve` in front of it, under
bench/tail_causes.py's probe (which samples the event loop's task count once a second); and this
client, on one asyncio loop, with aiohttp for HTTP and `websockets` for the chat page's socket
(docs/websocket.md). The mix, per 100 operations (MIX below): non-stream and streamed chat
completions checked word for word; upstream errors (a 500, answered 502; a 429, answered 429; a
stream the upstream cuts after two chunks); client aborts mid-stream (the connection closed after two
chunks of a slow stream); and chats on the socket: chat.send and the final answer, sessions.delete
(on four kept-open sockets, and on a fresh socket now and then), some aborted with chat.abort after
their first delta. A chat turn on the socket (a new session, the answer stored, the session deleted)
costs the gateway ~60 times a completion's CPU, so its share sets the mix's maximum.

Phases: the maximum (find_max: the highest rate of the mix the gateway keeps up with, in open-loop
steps of 3 s; --rps skips it); then an open loop at --fraction of it (operations started on a fixed
schedule, at most --max-in-flight at once: past that one is skipped, and counted) for --duration
seconds, the first --warmup of them a warm-up. After the warm-up and at the end the load pauses until
the gateway is quiescent (nothing in flight, no chat running, the client's connections closed, every
upstream connection an idle one in the pool) and a quiescent sample is taken:
comparing those two is the leak check that load does not blur. Under load, a sample every
--sample-every seconds: RSS, file descriptors by kind, threads (/proc/<pid>), asyncio tasks (the
probe), the gateway's sockets to the upstream and from clients (/proc/<pid>/net/tcp), the pool's own
count, WebSocket connections and log lines dropped (/metrics).

An unexpected error is any answer other than the one its operation expects (a status, the echoed
text, a terminal chat state) or an operation over 30 s; the run fails (exit 1) on one. The report
gives RSS after the warm-up and at the end (the target: under 2 MiB of growth), the leak rate (a
least-squares line through the RSS samples under load, MiB per minute), and the other counts over
time; --json writes it with every sample."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak_procs import MASTER, METRICS, probe_sample, proc_sample, processes, serve_upstream

STEP_S = 3.0  # seconds per rate tried while finding the maximum
OP_TIMEOUT = 30.0  # seconds: an operation still running after this is an unexpected error
PERSISTENT_SOCKETS = 4
MIX = {  # operations per 100; a chat turn on the socket costs the gateway ~60 times a completion's CPU
    "chat": 48, "stream": 26, "error_500": 4, "error_429": 3, "stream_cut": 3, "abort": 10,
    "ws_chat": 4, "ws_abort": 1, "ws_fresh": 1,
}
KEYS = ("fds", "fd_files", "fd_pipes", "fd_other", "fd_sockets", "client_sockets", "upstream_sockets",
        "upstream_close_wait", "pool_connections", "pool_idle", "tasks", "threads", "ws_connections",
        "log_lines_dropped")


class Unexpected(Exception):
    pass


# ------------------------------------------------------------------ processes


class Socket:
    """One chat socket: requests answered by id, each run's events to its own queue (bounded: the
    run's, dropped at its end)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.runs: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.early: dict[str, list[dict[str, Any]]] = {}  # events of a run whose chat.send answer is not in yet
        self.hello: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.closed: BaseException | None = None
        self.reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, base: str) -> Socket:
        import websockets

        ws = await websockets.connect(base.replace("http://", "ws://") + "/ws", proxy=None, open_timeout=10,
                                      additional_headers={"Authorization": f"Bearer {MASTER}"}, max_size=2**22)
        sock = cls(ws)
        async with asyncio.timeout(10):
            await sock.hello
        return sock

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                frame = json.loads(message)
                if frame.get("type") == "res":
                    fut = self.pending.pop(frame.get("id"), None)
                    if fut is not None and not fut.done():
                        fut.set_result(frame)
                elif frame.get("event") == "hello" and not self.hello.done():
                    self.hello.set_result(frame)
                elif frame.get("event") == "chat":
                    run = frame["payload"].get("runId")
                    queue = self.runs.get(run)
                    if queue is not None:
                        queue.put_nowait(frame["payload"])
                    else:
                        self.early.setdefault(run, []).append(frame["payload"])
                        if len(self.early) > 1024:  # bounded: a stray run's events go first
                            del self.early[next(iter(self.early))]
        except Exception as exc:  # the socket closed: every waiter learns it
            self.closed = exc
        finally:
            self.closed = self.closed or ConnectionError("socket closed")
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(Unexpected(f"chat socket closed: {self.closed!r}"))
            for queue in self.runs.values():
                queue.put_nowait({"state": "socket-closed"})

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if self.closed is not None:
            raise Unexpected(f"chat socket closed: {self.closed!r}")
        rid = next(self.ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        await self.ws.send(json.dumps({"type": "req", "id": rid, "method": method, "params": params}))
        frame = await fut
        if not frame.get("ok"):
            raise Unexpected(f"{method}: {frame.get('error')}")
        payload: dict[str, Any] = frame["payload"]
        return payload

    def follow(self, run: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for payload in self.early.pop(run, []):
            queue.put_nowait(payload)
        self.runs[run] = queue
        return queue

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self.reader.cancel()
        with contextlib.suppress(BaseException):
            await self.reader


async def ws_chat(sock: Socket, i: int, abort: bool) -> None:
    text = f"soak {i} fault:slow=50 fault:chunks=20" if abort else f"soak {i}"
    sent = await sock.call("chat.send", {"text": text, "model": "chat"})
    run, session = sent["runId"], sent["sessionId"]
    queue = sock.follow(run)
    try:
        while True:
            event = await queue.get()
            state = event.get("state")
            if state == "delta" and abort:
                answer = await sock.call("chat.abort", {"runId": run})
                if answer.get("runId") != run:
                    raise Unexpected(f"chat.abort answered {answer}")
                abort = False  # once; the terminal event follows
                text = ""
            elif state in ("final", "error", "aborted", "socket-closed"):
                break
    finally:
        sock.runs.pop(run, None)
    if text == "":  # aborted on purpose (or it had ended just before: final is fine too)
        if state not in ("aborted", "final"):
            raise Unexpected(f"aborted chat ended {state}: {event}")
    elif state != "final" or event.get("message", {}).get("content") != f"echo: {text}":
        raise Unexpected(f"chat ended {state}: {str(event)[:300]}")
    await sock.call("sessions.delete", {"sessionId": session})


# ------------------------------------------------------------------ HTTP operations


class Load:
    def __init__(self, base: str, max_in_flight: int, sockets: list[Socket]) -> None:
        self.base = base
        self.url = base + "/v1/chat/completions"
        self.max_in_flight = max_in_flight
        self.http = self._session()
        self.headers = {"Authorization": f"Bearer {MASTER}"}
        self.sockets = sockets
        self.next_socket = itertools.count()
        self.ops: dict[str, Callable[[int], Awaitable[None]]] = {
            "chat": self.chat, "stream": self.stream, "error_500": self.error_500, "error_429": self.error_429,
            "stream_cut": self.stream_cut, "abort": self.abort, "ws_chat": self.ws_chat, "ws_abort": self.ws_abort,
            "ws_fresh": self.ws_fresh,
        }

    def _session(self) -> Any:
        import aiohttp

        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.max_in_flight + 16),
                                     timeout=aiohttp.ClientTimeout(total=OP_TIMEOUT))

    async def reconnect(self) -> None:
        """Closes every kept-alive HTTP connection (a new session for what comes next)."""
        await self.http.close()
        self.http = self._session()

    def body(self, content: str, stream: bool = False) -> dict[str, Any]:
        return {"model": "chat", "stream": stream, "messages": [{"role": "user", "content": content}]}

    async def chat(self, i: int) -> None:
        async with self.http.post(self.url, json=self.body(f"soak {i}"), headers=self.headers) as r:
            data = await r.read()
            if r.status != 200:
                raise Unexpected(f"chat: HTTP {r.status} {data[:200]!r}")
            text = json.loads(data)["choices"][0]["message"]["content"]
            if text != f"echo: soak {i}":
                raise Unexpected(f"chat: answered {text!r}")

    async def _events(self, r: Any, stop_after: int | None = None) -> tuple[str, bool, int]:
        """(text, whether [DONE] came, content events) of an SSE answer; stops reading after
        `stop_after` content events when given."""
        text, done, n = [], False, 0
        async for raw in r.content:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
                break
            event = json.loads(data)
            for choice in event.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    text.append(piece)
                    n += 1
            if stop_after is not None and n >= stop_after:
                break
        return "".join(text), done, n

    async def stream(self, i: int) -> None:
        async with self.http.post(self.url, json=self.body(f"soak {i}", True), headers=self.headers) as r:
            if r.status != 200:
                raise Unexpected(f"stream: HTTP {r.status} {(await r.read())[:200]!r}")
            text, done, _ = await self._events(r)
            if text != f"echo: soak {i}" or not done:
                raise Unexpected(f"stream: {text!r}, [DONE] {done}")

    async def _error(self, i: int, fault: str, expect: int) -> None:
        async with self.http.post(self.url, json=self.body(f"soak {i} fault:{fault}"), headers=self.headers) as r:
            data = await r.read()
            if r.status != expect or "error" not in json.loads(data):
                raise Unexpected(f"fault:{fault}: HTTP {r.status} {data[:200]!r}")

    async def error_500(self, i: int) -> None:
        await self._error(i, "500", 502)

    async def error_429(self, i: int) -> None:
        await self._error(i, "429", 429)

    async def stream_cut(self, i: int) -> None:
        """The upstream closes the stream after two chunks: the client gets those, then an error
        event or the end of the body, never [DONE]; or a 502 if nothing had been sent yet."""
        async with self.http.post(self.url, json=self.body(f"soak {i} fault:midstream", True),
                                  headers=self.headers) as r:
            if r.status == 502:
                await r.read()
                return
            if r.status != 200:
                raise Unexpected(f"stream_cut: HTTP {r.status}")
            try:
                _, done, _ = await self._events(r)
            except Exception:  # aiohttp: the body ended early (ClientPayloadError): expected
                return
            if done:
                raise Unexpected("stream_cut: a cut stream ended with [DONE]")

    async def abort(self, i: int) -> None:
        """Two chunks of a slow stream, then the connection closed under it."""
        r = await self.http.post(self.url, json=self.body(f"soak {i} fault:slow=20 fault:chunks=30", True),
                                 headers=self.headers)
        try:
            if r.status != 200:
                raise Unexpected(f"abort: HTTP {r.status}")
            _, _, n = await self._events(r, stop_after=2)
            if n < 2:
                raise Unexpected(f"abort: the stream ended after {n} chunks")
        finally:
            r.close()  # closes the connection mid-stream

    async def ws_chat(self, i: int) -> None:
        await ws_chat(self._socket(), i, abort=False)

    async def ws_abort(self, i: int) -> None:
        await ws_chat(self._socket(), i, abort=True)

    async def ws_fresh(self, i: int) -> None:
        sock = await Socket.open(self.base)
        try:
            await ws_chat(sock, i, abort=False)
        finally:
            await sock.close()

    def _socket(self) -> Socket:
        sock = self.sockets[next(self.next_socket) % len(self.sockets)]
        if sock.closed is not None:
            raise Unexpected(f"a kept-open chat socket closed: {sock.closed!r}")
        return sock


# ------------------------------------------------------------------ the run


class Stats:
    def __init__(self) -> None:
        self.ok: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.latency: dict[str, list[float]] = {}
        self.errors: list[str] = []  # the first 20 unexpected errors, said
        self.skipped = 0

    def record(self, kind: str, ms: float, error: str | None) -> None:
        if error is None:
            self.ok[kind] = self.ok.get(kind, 0) + 1
            self.latency.setdefault(kind, []).append(ms)
        else:
            self.failed[kind] = self.failed.get(kind, 0) + 1
            if len(self.errors) < 20:
                self.errors.append(f"{kind}: {error}"[:500])

    @property
    def unexpected(self) -> int:
        return sum(self.failed.values())


class Runner:
    def __init__(self, a: argparse.Namespace, load: Load, pid: int, port: int, upstream_port: int, work: Path,
                 scraper: Any, cpu: CpuUse) -> None:
        self.a, self.load, self.pid, self.port, self.upstream_port, self.work = a, load, pid, port, upstream_port, work
        self.scraper, self.cpu = scraper, cpu
        rng = random.Random(7)
        self.table = [kind for kind, n in MIX.items() for _ in range(n)]
        rng.shuffle(self.table)
        self.counter = itertools.count()
        self.in_flight: set[asyncio.Task[None]] = set()
        self.samples: list[dict[str, Any]] = []
        self.t0 = time.monotonic()

    async def one(self, stats: Stats) -> None:
        i = next(self.counter)
        kind = self.table[i % len(self.table)]
        started = time.monotonic()
        error = None
        try:
            async with asyncio.timeout(OP_TIMEOUT):
                await self.load.ops[kind](i)
        except Unexpected as exc:
            error = str(exc)
        except TimeoutError:
            error = f"still running after {OP_TIMEOUT:g}s"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        stats.record(kind, (time.monotonic() - started) * 1000, error)

    async def find_max(self, seconds: float) -> float:
        """The highest rate of this mix the gateway keeps up with: open-loop steps of STEP_S seconds,
        doubled from 40 operations/s until one falls behind, then halved between the last rate kept
        up with and the first not, while `seconds` last. Falling behind: an unexpected error, a
        skipped operation, more operations still running at the step's end than a quarter of a
        second's worth, or a kind of operation whose median grew past 4 times (+ 5 ms) its median in the
        first, light step (requests queueing in the gateway)."""
        end = time.monotonic() + seconds
        good, bad, rate = 0.0, None, 40.0
        base: dict[str, float] = {}
        while time.monotonic() + STEP_S < end:
            stats = Stats()
            self.cpu.mark("start")
            await self.open_loop(STEP_S, rate, stats, "maximum")
            self.cpu.mark("step")
            backlog = len(self.in_flight)
            await self.drain(OP_TIMEOUT)
            p50 = {k: sorted(v)[len(v) // 2] for k, v in stats.latency.items() if len(v) >= 5}
            base = base or p50
            slow = [k for k, v in p50.items() if k in base and v > 4 * base[k] + 5]
            kept_up = not stats.unexpected and not stats.skipped and backlog <= 8 + rate / 4 and not slow
            print(f"  {rate:7.0f}/s: {'kept up' if kept_up else 'fell behind'} ({backlog} running at the end, "
                  f"{stats.unexpected} unexpected, {stats.skipped} skipped, median grown: {slow or 'none'}; "
                  f"CPU % of a core {self.cpu.phases['step']})", flush=True)
            if kept_up:
                good = rate
                self.cpu.phases["maximum"] = self.cpu.phases["step"]
            else:
                bad = rate
            if bad is not None and bad - good <= 0.1 * max(good, 1):
                break
            rate = rate * 2 if bad is None else (good + bad) / 2
        return good

    async def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.wait(set(self.in_flight), timeout=max(0.0, deadline - time.monotonic()))

    async def open_loop(self, seconds: float, rate: float, stats: Stats, phase: str) -> None:
        """`rate` operations a second on a fixed schedule for `seconds`, sampling as it goes."""
        start = time.monotonic()
        end = start + seconds
        next_sample = start
        k = 0
        while (now := time.monotonic()) < end:
            due = min(int((now - start) * rate) + 1, int(seconds * rate))
            while k < due:
                k += 1
                if len(self.in_flight) >= self.a.max_in_flight:
                    stats.skipped += 1
                    continue
                task = asyncio.get_running_loop().create_task(self.one(stats))
                self.in_flight.add(task)
                task.add_done_callback(self.in_flight.discard)
            if now >= next_sample:
                next_sample += self.a.sample_every
                self.samples.append({**await self.sample(), "phase": phase, "client_in_flight": len(self.in_flight)})
            await asyncio.sleep(min(0.005, max(0.0, start + k / rate - time.monotonic())))

    async def sample(self, paths: bool = False) -> dict[str, Any]:
        s: dict[str, Any] = {"t": round(time.monotonic() - self.t0, 2)}
        s.update(proc_sample(self.pid, self.port, self.upstream_port, paths))
        probe = probe_sample(self.work / "probe.jsonl")
        probe.pop("t", None)
        s.update(probe)
        s.update(await self.metrics())
        return s

    async def metrics(self) -> dict[str, float]:
        try:  # a connection of its own, closed after: it is not left among the gateway's sockets
            async with self.scraper.get(self.load.base + "/metrics", headers=self.load.headers) as r:
                text = await r.text()
        except Exception:
            return {}
        out = {}
        for name, pattern in METRICS.items():
            found = pattern.search(text)
            out[name] = float(found.group(1)) if found else 0.0
        try:  # the pool's connections by state (/debug/stats): open, and idle among them
            async with self.scraper.get(self.load.base + "/debug/stats", headers=self.load.headers) as r:
                pool = (await r.json())["services"]["oa"]["pool"] or {}
            out.update(pool_open=pool.get("open", -1), pool_idle=pool.get("idle", -1))
        except Exception:
            pass
        return out

    async def quiescent(self, what: str) -> dict[str, Any]:
        """Waits (bounded) for the client's operations to end and the gateway to hold nothing but
        its kept-open chat sockets, then samples. The client's idle keep-alive connections are
        closed first (the next phase opens new ones). Upstream connections may stay open, idle:
        the pool keeps up to max_pool of them, dropping expired ones when next asked for one."""
        deadline = time.monotonic() + self.a.quiet_timeout
        await self.drain(self.a.quiet_timeout)
        await self.load.reconnect()
        while True:
            s = await self.sample()
            quiet = {"client_in_flight": not self.in_flight, "http_in_flight": s.get("http_in_flight", 9) <= 1,
                     "chats_in_flight": s.get("chats_in_flight", 9) == 0,
                     "ws_connections": s.get("ws_connections") == PERSISTENT_SOCKETS,
                     "client_sockets": s["client_sockets"] == PERSISTENT_SOCKETS,
                     # every upstream socket is an idle connection of the pool (which keeps up to
                     # max_pool of them: they expire when next asked for, not on a timer)
                     "upstream_idle": s["upstream_sockets"] == s.get("pool_open") == s.get("pool_idle")}
            if all(quiet.values()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)  # polling the gateway's state, bounded by the deadline
        # the probe samples the loop's tasks once a second: one taken after the gateway went quiet
        quiet_at = time.monotonic_ns()
        for _ in range(50):  # 5 s at most
            if probe_sample(self.work / "probe.jsonl").get("t", 0) > quiet_at:
                break
            await asyncio.sleep(0.1)
        s = {**await self.sample(paths=True), "phase": what, "quiet": all(quiet.values()),
             "not_quiet": [k for k, v in quiet.items() if not v]}
        return s


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuUse:
    """CPU used by the gateway, the upstream and this client over a phase, in % of one core: which
    one the maximum was bound by."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.phases: dict[str, dict[str, float]] = {}
        self._start = (time.monotonic(), {k: cpu_seconds(p) for k, p in pids.items()})

    def mark(self, phase: str) -> None:
        now, cpu = time.monotonic(), {k: cpu_seconds(p) for k, p in self.pids.items()}
        then, before = self._start
        self.phases[phase] = {k: round(100 * (cpu[k] - before[k]) / (now - then)) for k in cpu}
        self._start = (now, cpu)


async def drive(a: argparse.Namespace, base: str, pids: dict[str, int], port: int, upstream_port: int,
                work: Path) -> dict[str, Any]:
    import aiohttp

    scraper = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True),
                                    timeout=aiohttp.ClientTimeout(total=OP_TIMEOUT))
    sockets = [await Socket.open(base) for _ in range(PERSISTENT_SOCKETS)]
    load = Load(base, a.max_in_flight, sockets)
    cpu = CpuUse(pids)
    runner = Runner(a, load, pids["gateway"], port, upstream_port, work, scraper, cpu)
    try:
        if a.rps:
            max_rps, rate = None, a.rps
        else:
            print(f"measuring the maximum: steps of {STEP_S:g} s for {a.max_seconds:g} s at most", flush=True)
            max_rps = await runner.find_max(a.max_seconds)
            if not max_rps:
                raise RuntimeError("the gateway kept up with no rate tried")
            rate = a.fraction * max_rps
            print(f"  maximum {max_rps:.0f} operations/s (CPU % of a core there: {cpu.phases['maximum']}); "
                  f"the soak runs at {rate:.0f}/s", flush=True)
        warm, run = Stats(), Stats()
        # The warm-up's first half at the maximum (1.25 times the rate with --rps): what grows with
        # concurrency (pools, the allocator's arenas, SQLite's page caches) reaches its high-water
        # mark before the first quiescent sample, not during the soak, where it would read as a leak.
        peak = max_rps or 1.25 * rate
        print(f"warm-up: {a.warmup / 2:g} s at {peak:.0f}/s, {a.warmup / 2:g} s at {rate:.0f}/s", flush=True)
        cpu.mark("start")
        await runner.open_loop(a.warmup / 2, peak, warm, "warmup")
        await runner.open_loop(a.warmup / 2, rate, warm, "warmup")
        q0 = await runner.quiescent("after warm-up")
        print(f"soak: {a.duration - a.warmup:g} s at {rate:.0f} operations/s", flush=True)
        cpu.mark("start")
        await runner.open_loop(a.duration - a.warmup, rate, run, "soak")
        cpu.mark("soak")
        q1 = await runner.quiescent("end")
    finally:
        for sock in sockets:
            await sock.close()
        await load.http.close()
        await scraper.close()
    out = report(a, max_rps, rate, warm, run, runner.samples, q0, q1)
    out["cpu_percent"] = {k: v for k, v in cpu.phases.items() if k not in ("start", "step")}
    return out


def slope_per_min(samples: list[dict[str, Any]], key: str) -> float | None:
    points = [(s["t"], s[key]) for s in samples if key in s]
    if len(points) < 3:
        return None
    fit = statistics.linear_regression([p[0] for p in points], [p[1] for p in points])
    return round(fit.slope * 60, 3)


def report(a: argparse.Namespace, max_rps: float | None, rate: float, warm: Stats, run: Stats,
           samples: list[dict[str, Any]], q0: dict[str, Any], q1: dict[str, Any]) -> dict[str, Any]:
    soak = [s for s in samples if s["phase"] == "soak"]
    ops = {}
    for kind in MIX:
        lat = sorted(run.latency.get(kind, []))
        ops[kind] = {"ok": run.ok.get(kind, 0), "unexpected": run.failed.get(kind, 0),
                     "p50_ms": round(lat[len(lat) // 2], 1) if lat else None,
                     "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1) if lat else None}
    summary: dict[str, Any] = {
        "unexpected_errors": run.unexpected + warm.unexpected,
        "unexpected_in_warmup": warm.unexpected,
        "skipped_client_saturated": run.skipped + warm.skipped,
        "operations": sum(run.ok.values()) + run.unexpected,
        "rss_after_warmup_mib": q0["rss_mib"], "rss_end_mib": q1["rss_mib"],
        "rss_growth_mib": round(q1["rss_mib"] - q0["rss_mib"], 2),
        "leak_rate_mib_per_min": slope_per_min(soak, "rss_mib"),
        # the same over the soak's second half: a one-off step early on (a pool's high-water mark)
        # moves the whole run's slope, a leak moves both
        "leak_rate_second_half_mib_per_min": slope_per_min(soak[len(soak) // 2:], "rss_mib"),
        "quiescent": {"after_warmup": q0["quiet"], "end": q1["quiet"], "not_quiet": q0["not_quiet"] + q1["not_quiet"]},
    }
    for key in KEYS:
        under_load = [s[key] for s in soak if key in s]
        summary[key] = {"after_warmup": q0.get(key), "end": q1.get(key),
                        "min_under_load": min(under_load) if under_load else None,
                        "max_under_load": max(under_load) if under_load else None,
                        "slope_per_min": slope_per_min(soak, key)}
    return {"duration_s": a.duration, "warmup_s": a.warmup, "max_rps": round(max_rps, 1) if max_rps else None,
            "rate": round(rate, 1), "fraction": a.fraction if max_rps else None, "mix": MIX, "ops": ops,
            "errors": warm.errors[:10] + run.errors[:10], "summary": summary,
            "quiescent_samples": [q0, q1], "samples": samples}


def gc_pauses(path: Path) -> dict[str, Any]:
    """The gateway's garbage collections over the whole run (the probe records each), per generation:
    count, pause p50 / max / total in ms of wall time, and the max in CPU time (a pause whose wall
    time is far above its CPU time is the process waiting for a CPU, not the collector working)."""
    pauses: dict[str, list[tuple[float, float]]] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                for event in json.loads(line)["events"]:
                    if event[0] == "gc":
                        pauses.setdefault(event[1], []).append((event[3] / 1e6, event[5] / 1e6))
    out = {}
    for gen, v in sorted(pauses.items()):
        wall = sorted(w for w, _ in v)
        out[gen] = {"count": len(v), "p50_ms": round(wall[len(wall) // 2], 3), "max_ms": round(wall[-1], 3),
                    "total_ms": round(sum(wall), 1), "max_cpu_ms": round(max(c for _, c in v), 3)}
    return out


def print_report(r: dict[str, Any]) -> None:
    s = r["summary"]
    rate = f"{r['rate']:.0f} operations/s" + (f" ({r['fraction']:.0%} of {r['max_rps']:.0f} measured)"
                                               if r["max_rps"] else "")
    print(f"\nsoak: {r['duration_s']:g} s ({r['warmup_s']:g} s warm-up) at {rate}; {s['operations']} operations "
          f"after the warm-up; {s['skipped_client_saturated']} skipped (client saturated)")
    print(f"  {'operation':<12} {'ok':>8} {'unexpected':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for kind, o in r["ops"].items():
        print(f"  {kind:<12} {o['ok']:>8} {o['unexpected']:>10} {o['p50_ms'] or '-':>8} {o['p99_ms'] or '-':>8}")
    print(f"CPU, % of one core: {r.get('cpu_percent')}")
    print(f"unexpected errors: {s['unexpected_errors']} (warm-up: {s['unexpected_in_warmup']})")
    for e in r["errors"][:10]:
        print(f"  {e}")
    print(f"RSS: {s['rss_after_warmup_mib']} MiB after the warm-up, {s['rss_end_mib']} MiB at the end (quiescent): "
          f"growth {s['rss_growth_mib']} MiB (target < 2); leak rate {s['leak_rate_mib_per_min']} MiB/min "
          f"(least squares under load; its second half: {s['leak_rate_second_half_mib_per_min']} MiB/min)")
    print(f"  {'':<22} {'after warm-up':>13} {'end':>8} {'min-max under load':>20} {'slope/min':>10}")
    for key in KEYS:
        v = s[key]
        span = f"{v['min_under_load']}-{v['max_under_load']}"
        print(f"  {key:<22} {v['after_warmup']!s:>13} {v['end']!s:>8} {span:>20} {v['slope_per_min']!s:>10}")
    print(f"garbage collections in the gateway (whole run): {r.get('gc') or 'none'}")
    if s["quiescent"]["not_quiet"]:
        print(f"  not quiescent when sampled: {s['quiescent']['not_quiet']}")


def main() -> int:
    if sys.argv[1:2] == ["upstream"]:
        return serve_upstream(int(sys.argv[2]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=600, help="seconds of load at the soak rate, warm-up included")
    ap.add_argument("--warmup", type=float, default=60, help="seconds of it before the first quiescent sample")
    ap.add_argument("--rps", type=float, help="operations a second (default: --fraction of the measured maximum)")
    ap.add_argument("--fraction", type=float, default=0.8)
    ap.add_argument("--max-seconds", type=float, default=60, help="seconds the maximum may take to find")
    ap.add_argument("--max-in-flight", type=int, default=256, help="operations at once; more are skipped, counted")
    ap.add_argument("--sample-every", type=float, default=5.0, help="seconds between samples under load")
    ap.add_argument("--quiet-timeout", type=float, default=30.0, help="seconds a pause waits for quiescence")
    ap.add_argument("--pin", action="store_true", help="the gateway on CPU 1, the upstream on CPU 0")
    ap.add_argument("--gc-threshold", help="the gateway's gc.set_threshold(A, B, C) (an experiment: 50000,20,100)")
    ap.add_argument("--census-every", type=float, default=0,
                    help="seconds between counts of the gateway's oldest objects by type (probe.jsonl; ~ms each)")
    ap.add_argument("--out", help="work directory (gateway.log, probe.jsonl); default a new temporary one")
    ap.add_argument("--json", help="write the report (with every sample) here")
    a = ap.parse_args()
    if a.warmup >= a.duration:
        ap.error("--warmup must be shorter than --duration")
    work = Path(a.out or tempfile.mkdtemp(prefix="soak-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work directory: {work}")
    with processes(work, a.pin, a.gc_threshold, a.census_every) as (gateway, upstream, port, upstream_port):
        pids = {"gateway": gateway.pid, "upstream": upstream.pid, "client": os.getpid()}
        r = asyncio.run(drive(a, f"http://127.0.0.1:{port}", pids, port, upstream_port, work))
    r["work_dir"] = str(work)
    r["gc"] = gc_pauses(work / "probe.jsonl")
    print_report(r)
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=1))
    return 1 if r["summary"]["unexpected_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
