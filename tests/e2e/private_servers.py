"""Database servers of a test's own, on free ports, that a test may stop and start without
disturbing anything else on the machine: a PostgreSQL cluster (initdb in a temporary directory)
and a Redis server without persistence (a restart loses its data, as a cache's would)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import asyncpg
import pytest
import redis

from tests.e2e.harness import free_port, wait_ready

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


class PrivatePostgres:
    def __init__(self) -> None:
        if PG_BIN is None:
            pytest.fail("PostgreSQL's server binaries are missing (/usr/lib/postgresql/*/bin)")
        # not under pytest's tmp_path: that is private to root, and the server runs as postgres
        self.root = Path(tempfile.mkdtemp(prefix="clawdbot-pg-"))
        self.dir = self.root / "pgdata"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def init(self) -> PrivatePostgres:
        self.dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", str(self.dir), "-A", "trust", "-U", "postgres", "--no-sync")
        return self

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.dir), "-o", opts, "-l", str(self.dir / "server.log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir), "-m", "fast", "-w", "stop")

    def rows(self, key_id: str) -> list[str]:
        async def fetch() -> list[str]:
            conn = await asyncpg.connect(self.url)
            try:
                return [r["request_id"] for r in await conn.fetch(
                    "SELECT request_id FROM spend WHERE key_id = $1", key_id)]
            finally:
                await conn.close()

        return asyncio.run(fetch())


class PrivateRedis:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is missing (apt-get install -y redis-server)")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        assert wait_ready(self.proc, self.ping, "redis-server", lambda: "", timeout=30, poll=0.05)

    def ping(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """Down at once, its data gone (no persistence)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
