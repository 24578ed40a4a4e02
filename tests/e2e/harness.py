"""Real gateway processes for end-to-end tests: `python -m clawdbot <role> ...` on a free port, its
log captured to a file the tests can search."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.secrets import gateways as secrets_scan  # the session-end leak scan collects each gateway's output
from tests.upstreams.openai_server import OpenAIUpstream


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def openai_upstreams(*names: str) -> Iterator[dict[str, OpenAIUpstream]]:
    """Several test upstreams at once, by name; all stopped at the end."""
    servers: dict[str, OpenAIUpstream] = {}
    try:
        for name in names:
            servers[name] = OpenAIUpstream().start()
        yield servers
    finally:
        for s in servers.values():
            s.stop()


def healthy(port: int, timeout: float = 1.0) -> bool:
    """GET /healthz on 127.0.0.1:port answers 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def wait_ready(proc: subprocess.Popen[bytes], ready: Callable[[], bool], name: str, log: Callable[[], str],
               timeout: float, poll: float = 0.1) -> bool:
    """Polls `ready` until it holds (True) or `timeout` passes (False); a process that exits first
    is an error that shows its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # polls for readiness with a deadline
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log()}")
        if ready():
            return True
        time.sleep(poll)
    return False


def stop_group(proc: subprocess.Popen[bytes] | None, grace: float = 15.0) -> None:
    """SIGTERM to the process group of a process started with start_new_session, SIGKILL after `grace`."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


_held: list[socket.socket] = []  # closed_port()'s sockets, bound for the whole test session


def closed_port(among: range | None = None) -> int:
    """A port nothing listens on (connections are refused), for the whole session: its socket
    stays bound without listening. A port merely freed could be taken again, by a server or as the
    ephemeral source port of a connection (a connect to it on loopback can then even connect to
    itself: TCP's simultaneous open). `among`: the first free one of these, else any."""
    for wanted in [*(among or ()), 0]:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", wanted))
        except OSError:
            s.close()
            continue
        _held.append(s)
        port: int = s.getsockname()[1]
        return port
    raise OSError("no port to bind on 127.0.0.1")


class GatewayProcess:
    def __init__(
        self,
        args: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        port: int | None = None,
        cwd: Path | None = None,
        runner: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.runner = runner or ["-m", "clawdbot"]  # what python runs: the CLI, or a script that wraps it
        self.cwd = cwd
        self.args = [*args, "--port", str(self.port)]
        self.log_path = log_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDBOT_")}
        # never the user's ~/.clawdbot: each process gets its own data directory unless told
        self.env["CLAWDBOT_DATA_DIR"] = str(log_path.parent / f"data-{self.port}")
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> GatewayProcess:
        secrets_scan.started(self)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, *self.runner, *self.args],
            stdout=self._log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True, cwd=self.cwd,
        )
        try:
            if wait_ready(self.proc, self._healthy, "gateway", self.log, timeout, poll=0.05):
                return self
        except RuntimeError:
            secrets_scan.stopped(self)
            raise
        self.stop()
        raise RuntimeError(f"gateway not ready after {timeout}s:\n{self.log()}")

    def _healthy(self) -> bool:
        return healthy(self.port)

    def run_to_exit(self, timeout: float = 30.0) -> tuple[int, str]:
        """For commands expected to refuse to start: exit code and output."""
        out = subprocess.run(
            [sys.executable, "-m", "clawdbot", *self.args], env=self.env, capture_output=True, timeout=timeout,
        )
        return out.returncode, (out.stdout + out.stderr).decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, needle: str, timeout: float = 10.0) -> str:
        return self.wait_until(lambda text: needle in text, timeout, repr(needle))

    def wait_until(self, done: Callable[[str], bool], timeout: float = 10.0, what: str = "the condition") -> str:
        """The log once `done(log)` holds (polled: the gateway writes it, the test reads it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if done(text):
                return text
            time.sleep(0.05)
        raise AssertionError(f"{what} not in the log after {timeout}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            secrets_scan.stopping(self)
            stop_group(self.proc)
        if self.proc is not None:
            self._log.close()
            secrets_scan.stopped(self)

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_config(tmp: Path, config: str, master: str) -> GatewayProcess:
    """`clawdbot serve` on `config` (YAML written to tmp/clawdbot.yaml), its master key `master`
    (the config names it as ${TEST_MASTER_KEY})."""
    path = tmp / "clawdbot.yaml"
    path.write_text(config)
    return GatewayProcess(["serve", "--config", str(path)], tmp / "gateway.log", {"TEST_MASTER_KEY": master})


def http_call(gw: GatewayProcess, method: str, path: str, body: object = None,
              headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One plain HTTP request (headers exactly as given: no Content-Type unless named)."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=20)
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None, headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def metric(gw: GatewayProcess, name: str, key: str) -> float:
    """An unlabelled sample of the gateway's /metrics (scraped with `key`)."""
    status, body = http_call(gw, "GET", "/metrics", None, {"Authorization": f"Bearer {key}"})
    assert status == 200, body[:300]
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def until(what: Callable[[], Any], deadline: float = 10.0) -> Any:
    """`what()` once it returns something truthy, or its last answer after `deadline` seconds: an
    outcome written a moment later (the request log and spend write in batches)."""
    end = time.monotonic() + deadline
    while True:
        got = what()
        if got or time.monotonic() > end:
            return got
        time.sleep(0.05)  # polling an outcome, with a deadline
