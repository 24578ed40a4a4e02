"""`clawdbot serve --workers N` (docs/deploy.md, Workers): N gateway processes on one port.

The process started by the command supervises; it serves nothing itself. It starts N copies of the
same command line as workers (CLAWDBOT_WORKER_INDEX tells a copy that it is one), each a whole
gateway that binds the port with SO_REUSEPORT, so that the kernel spreads new connections over
them. A worker that dies is started again (after 1, 2, 4 .. 30 s while it keeps dying young); one
that cannot even start (its config, its port) ends the command. SIGTERM or SIGINT stops them all
the way one stops (each stops accepting, finishes what is in flight within the drain timeout,
flushes spend and the request log) and the command exits 0 once every worker has; SIGHUP is passed
on (each reloads its config).

What a request may touch must be shared by the workers, so N > 1 needs Redis (`redis_url`: rate
limits, budgets' reservations, circuit breakers, key revocation) and a database every worker opens
(PostgreSQL, or a SQLite file on this machine; not `memory://`). Without them the command refuses
to start and says which is missing (shared_state_problem)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

from clawdbot.config.schema import Config
from clawdbot.web.auth import SHARED_SECRET_ENV as SECRET_ENV  # what one process would make alone

log = logging.getLogger("clawdbot.workers")

INDEX_ENV = "CLAWDBOT_WORKER_INDEX"  # set in a worker: its number, 0..N-1
MAX_WORKERS = 64
YOUNG_S = 10.0  # a worker that dies sooner than this after its start is restarted later each time
GIVE_UP = 5  # a worker that cannot get past its start this many times in a row ends the command
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
STOP_GRACE_S = 5.0  # after the drain timeout: then SIGKILL


def worker_index(env: Mapping[str, str]) -> int | None:
    text = env.get(INDEX_ENV)
    return int(text) if text is not None and text.isdigit() else None


def shared_state_problem(config: Config, env: Mapping[str, str], workers: int) -> str | None:
    """Why N workers cannot share this config's state, or None."""
    from clawdbot.state.build import database_url
    from clawdbot.state.redis import redis_url

    if not 1 <= workers <= MAX_WORKERS:
        return f"--workers must be 1..{MAX_WORKERS}, not {workers}"
    if workers == 1:
        return None
    missing = []
    if not redis_url(config, env):
        missing.append("Redis (redis_url or CLAWDBOT_REDIS_URL): rate limits, budget reservations, circuit "
                       "breakers and key revocation are per process without it, so each worker would allow its "
                       "own share again")
    url = database_url(config, env)
    if url.split(":", 1)[0].lower() == "memory":
        missing.append("a database every worker opens (database_url: PostgreSQL, or a SQLite file on this "
                       "machine), not memory://: keys, spend, chats and the request log would be one per worker")
    if not missing:
        return None
    return f"--workers {workers} needs " + "; and ".join(missing)


def check_port(host: str, port: int) -> None:
    """OSError when the port cannot be bound with SO_REUSEPORT (taken by a process that did not set
    it, or not ours): said once here instead of by every worker."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        probe.bind((host, port))  # bound, never listening: the kernel sends it no connection


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A worker's listening socket, in the port's SO_REUSEPORT group."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@dataclass
class Worker:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    young_deaths: int = 0
    restart_at: float | None = None
    pids: list[int] = field(default_factory=list)


class Supervisor:
    def __init__(self, argv: Sequence[str], workers: int, env: Mapping[str, str], drain_s: float) -> None:
        self.argv = list(argv)
        self.env = {**env, SECRET_ENV: env.get(SECRET_ENV) or os.urandom(32).hex()}
        self.workers = [Worker(i) for i in range(workers)]
        self.drain_s = drain_s
        self.stopping = False
        self.failed: str | None = None

    def start(self, w: Worker) -> None:
        env = {**self.env, INDEX_ENV: str(w.index)}
        w.proc = subprocess.Popen([sys.executable, "-m", "clawdbot", *self.argv], env=env)
        w.started = time.monotonic()
        w.restart_at = None
        w.pids.append(w.proc.pid)
        log.info("worker %d started (pid %d)", w.index, w.proc.pid)

    def signal_all(self, sig: int) -> None:
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is None:
                w.proc.send_signal(sig)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            log.info("stopping %d workers (%s)", len(self.workers), signal.Signals(signum).name)
        self.stopping = True

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self.signal_all(signal.SIGHUP)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        for w in self.workers:
            self.start(w)
        while not self.stopping:
            self.tend()
            time.sleep(0.1)  # the supervisor's tick: a dead worker is noticed within it
        return self.stop()

    def tend(self) -> None:
        now = time.monotonic()
        for w in self.workers:
            if w.proc is None or w.proc.poll() is None:
                if w.proc is None and w.restart_at is not None and now >= w.restart_at:
                    self.start(w)
                continue
            code = w.proc.returncode
            young = now - w.started < YOUNG_S
            w.young_deaths = w.young_deaths + 1 if young else 0
            log.error("worker %d (pid %d) exited with %s", w.index, w.proc.pid, code)
            w.proc = None
            if w.young_deaths >= GIVE_UP:
                self.failed = f"worker {w.index} kept exiting right after its start (last code {code})"
                log.error("%s: stopping", self.failed)
                self.stopping = True
                return
            delay = BACKOFF_S[min(w.young_deaths, len(BACKOFF_S)) - 1] if w.young_deaths else 0.0
            w.restart_at = now + delay

    def stop(self) -> int:
        """Every worker drains and exits; 0 when all did so cleanly (and none had to be killed)."""
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.drain_s + STOP_GRACE_S
        clean = self.failed is None
        for w in self.workers:
            if w.proc is None:
                continue
            try:
                code = w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker %d did not stop within %.0f s: killed", w.index, self.drain_s + STOP_GRACE_S)
                w.proc.kill()
                w.proc.wait()
                clean = False
                continue
            if code not in (0, -signal.SIGTERM):
                clean = False
        return 0 if clean else 1
