"""The soak benchmark's processes and what it reads of them (bench/soak.py): the OpenAI test
upstream and the gateway under bench/tail_causes.py's probe, their /proc numbers and /metrics."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MASTER = "sk-soak-master-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve_upstream(port: int) -> int:
    """`soak.py upstream PORT`: the test upstream until SIGTERM."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})  # the server thread inherits it
    sys.path.insert(0, str(ROOT))
    from tests.upstreams.openai_server import OpenAIUpstream

    upstream = OpenAIUpstream(port=port, history=8).start()
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    upstream.stop()
    return 0


GATEWAY_CONFIG = """
server:
  master_key: ${{SOAK_MASTER_KEY}}
services:
  - name: oa
    type: openai
    endpoint: http://127.0.0.1:{port}/v1
    breaker: {{enabled: false}}   # the upstream fails on purpose; an open circuit would change the mix
models:
  chat: [oa/mock-a]
web:
  resume_seconds: 2   # a closed socket's logical connection goes after 2 s, not 60: quiescence comes sooner
  rate_limits: {{per_user_per_minute: 0, per_session_per_minute: 0, session_changes_per_minute: 0}}
"""


Procs = tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], int, int]


@contextlib.contextmanager
def processes(work: Path, pin: bool, gc_threshold: str | None = None, census_every: float = 0) -> Iterator[Procs]:
    """The upstream and the gateway (under the probe): (gateway, upstream, gateway port, upstream port)."""
    up_port, gw_port = free_port(), free_port()
    config = work / "clawdbot.yaml"
    config.write_text(GATEWAY_CONFIG.format(port=up_port))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDBOT_")}
    env.update(SOAK_MASTER_KEY=MASTER, CLAWDBOT_DATA_DIR=str(work / "data"))
    gw_cpu = ["taskset", "-c", "1"] if pin else []
    load_cpu = ["taskset", "-c", "0"] if pin else []
    upstream = subprocess.Popen([*load_cpu, sys.executable, str(HERE / "soak.py"), "upstream", str(up_port)],
                                stdout=subprocess.PIPE, stderr=(work / "upstream.log").open("wb"), cwd=ROOT,
                                start_new_session=True)
    gateway: subprocess.Popen[bytes] | None = None
    try:
        assert upstream.stdout is not None
        if upstream.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the upstream did not start: {(work / 'upstream.log').read_text()[-2000:]}")
        gateway = subprocess.Popen(
            [*gw_cpu, sys.executable, str(HERE / "tail_causes.py"), "probe", "--out", str(work / "probe.jsonl"),
             *(["--gc-threshold", gc_threshold] if gc_threshold else []),
             *(["--census-every", str(census_every)] if census_every else []),
             "--", "serve", "--config", str(config), "--port", str(gw_port)],
            stdout=subprocess.DEVNULL, stderr=(work / "gateway.log").open("wb"), env=env, cwd=ROOT,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while not port_open(gw_port):
            if gateway.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not start: {(work / 'gateway.log').read_text()[-3000:]}")
            time.sleep(0.05)
        yield gateway, upstream, gw_port, up_port
    finally:
        sys.path.insert(0, str(ROOT))
        from tests.e2e.harness import stop_group  # SIGTERM to the group, SIGKILL after the grace

        for proc in (gateway, upstream):
            stop_group(proc, grace=20.0)


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


# ------------------------------------------------------------------ what the gateway process holds


def proc_sample(pid: int, port: int, upstream_port: int, paths: bool = False) -> dict[str, Any]:
    """What the gateway process holds: RSS, threads, file descriptors by kind, and its TCP sockets
    by peer (the upstream; clients of its own port; listening)."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
    inodes: set[str] = set()
    kinds = {"files": 0, "pipes": 0, "other": 0}
    files: dict[str, int] = {}
    fds = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        fds += 1
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
            elif link.startswith("/"):
                kinds["files"] += 1
                files[link] = files.get(link, 0) + 1
            elif link.startswith("pipe:"):
                kinds["pipes"] += 1
            else:
                kinds["other"] += 1  # anon inodes: epoll, eventfd, ...
    sockets = {"upstream_sockets": 0, "upstream_close_wait": 0, "client_sockets": 0, "listening": 0}
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}") as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[9] not in inodes:
                    continue
                state = fields[3]
                local, remote = (int(field.rsplit(":", 1)[1], 16) for field in fields[1:3])
                if state == "0A":
                    sockets["listening"] += 1
                elif remote == upstream_port:
                    sockets["upstream_sockets"] += 1
                    sockets["upstream_close_wait"] += state == "08"
                elif local == port:
                    sockets["client_sockets"] += 1
    return {"rss_mib": round(rss_kb / 1024, 2), "threads": threads, "fds": fds, "fd_sockets": len(inodes),
            **{f"fd_{k}": v for k, v in kinds.items()}, **sockets, **({"open_files": files} if paths else {})}


def probe_sample(path: Path) -> dict[str, Any]:
    """The probe's newest sample (asyncio tasks, by coroutine)."""
    with contextlib.suppress(OSError, ValueError, IndexError), path.open("rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 262_144))
        last = json.loads(f.read().splitlines()[-1])
        return {"tasks": last["tasks"], "task_names": last["task_names"], "loop_lag_ms": round(last["lag_ms"], 2),
                "t": last["t"]}
    return {}


METRICS = {
    "http_in_flight": re.compile(r"^clawdbot_http_requests_in_flight (\S+)$", re.M),
    "chats_in_flight": re.compile(r"^clawdbot_chat_runs_in_flight (\S+)$", re.M),
    "ws_connections": re.compile(r"^clawdbot_websocket_connections (\S+)$", re.M),
    "pool_connections": re.compile(r'^clawdbot_service_pool_connections\{service="oa"\} (\S+)$', re.M),
    "log_lines_dropped": re.compile(r"^clawdbot_log_lines_dropped_total (\S+)$", re.M),
}


# ------------------------------------------------------------------ the chat socket
