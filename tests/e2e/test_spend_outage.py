"""Spend survives a PostgreSQL outage: records made while the database is down go to the local
journal and reach the spend table when it is back, request for request, with no duplicate.

The database is a private PostgreSQL cluster made for this module (initdb in a temporary directory,
its own port), so stopping it disturbs nothing else on the machine."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import openai
import pytest

from tests.e2e.harness import GatewayProcess, free_port
from tests.e2e.test_tenancy import MASTER, create_key
from tests.upstreams.openai_server import OpenAIUpstream

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


@pytest.fixture(scope="module")
def pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres().init()
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped by a failed test
            server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


def gateway(tmp: Path, pg: PrivatePostgres, upstream: OpenAIUpstream, data: Path) -> GatewayProcess:
    cfg = tmp / "clawdbot.yaml"
    cfg.write_text(f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
  key_cache_ttl: 0.2
database_url: {pg.url}
metering:
  flush_interval: 0.1
services:
  - name: oa
    type: openai
    endpoint: {upstream.url}/v1
models:
  chat-oa: [oa/mock-a]
""")
    return GatewayProcess(["serve", "--config", str(cfg)], tmp / f"gateway-{time.monotonic_ns()}.log",
                          {"TEST_MASTER_KEY": MASTER, "CLAWDBOT_DATA_DIR": str(data)})


def send(g: GatewayProcess, key: str, n: int) -> list[str]:
    """n requests, 8 at a time; the request ids of those answered."""
    oai = openai.OpenAI(base_url=g.url + "/v1", api_key=key, max_retries=0, timeout=20)

    def one(i: int) -> str:
        raw = oai.chat.completions.with_raw_response.create(
            model="chat-oa", messages=[{"role": "user", "content": f"spend {i}"}])
        return raw.headers["x-request-id"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def wait_rows(pg: PrivatePostgres, key_id: str, expected: int, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    rows = pg.rows(key_id)
    while len(rows) < expected and time.monotonic() < deadline:
        time.sleep(0.1)  # polling the table until the journal's replay arrives
        rows = pg.rows(key_id)
    return rows


def test_spend_made_during_an_outage_arrives_when_the_database_returns(
        tmp_path: Path, pg: PrivatePostgres, openai_upstream: OpenAIUpstream) -> None:
    with gateway(tmp_path, pg, openai_upstream, tmp_path / "data") as g:
        made = create_key(g, name="outage")
        key, key_id = made["key"], made["id"]
        sent = send(g, key, 40)
        assert sorted(wait_rows(pg, key_id, 40)) == sorted(sent)
        pg.stop()
        try:
            during = send(g, key, 60)  # the key is cached; spend goes to the journal
            assert len(during) == 60
            journal = tmp_path / "data" / "spend.journal"
            deadline = time.monotonic() + 10
            while journal.stat().st_size == 0 and time.monotonic() < deadline:
                time.sleep(0.05)  # polling until the writer's next flush has failed over to the journal
            assert journal.stat().st_size > 0
        finally:
            pg.start()
        after = send(g, key, 20)
        rows = wait_rows(pg, key_id, 120)
    assert len(rows) == len(set(rows)) == 120  # nothing lost, nothing twice
    assert sorted(rows) == sorted(sent + during + after)


def test_spend_journaled_at_shutdown_is_replayed_by_the_next_process(
        tmp_path: Path, pg: PrivatePostgres, openai_upstream: OpenAIUpstream) -> None:
    data = tmp_path / "data"
    with gateway(tmp_path, pg, openai_upstream, data) as g:
        made = create_key(g, name="restart")
        send(g, made["key"], 1)
        assert len(wait_rows(pg, made["id"], 1)) == 1
        pg.stop()
        try:
            during = send(g, made["key"], 30)
        finally:
            g.stop()  # graceful: what is queued goes to the journal, the database being down
    pg.start()
    assert (data / "spend.journal").stat().st_size > 0
    with gateway(tmp_path, pg, openai_upstream, data):
        rows = wait_rows(pg, made["id"], 31)
    assert len(rows) == len(set(rows)) == 31
    assert set(during) <= set(rows)
