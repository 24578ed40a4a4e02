"""Spend survives a PostgreSQL outage and the gateway's own death: every record is in the local
journal as it is made, and reaches the spend table when the database is back (or when a gateway
starts again on the data directory), request for request, with no duplicate.

The database is a private PostgreSQL cluster made for this module (initdb in a temporary directory,
its own port), so stopping it disturbs nothing else on the machine."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.e2e.harness import GatewayProcess
from tests.e2e.private_servers import PrivatePostgres
from tests.e2e.test_tenancy import MASTER, create_key
from tests.upstreams.openai_server import OpenAIUpstream


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


def gateway(tmp: Path, pg: PrivatePostgres, upstream: OpenAIUpstream, data: Path,
            flush: float = 0.1) -> GatewayProcess:
    cfg = tmp / "clawdbot.yaml"
    cfg.write_text(f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
  key_cache_ttl: 0.2
database_url: {pg.url}
metering:
  flush_interval: {flush}
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


def journal_bytes(data: Path) -> int:
    return sum(p.stat().st_size for p in data.glob("spend-*.journal"))


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
            during = send(g, key, 60)  # the key is cached; spend waits in the journal
            assert len(during) == 60
            assert journal_bytes(tmp_path / "data") > 0
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
    assert journal_bytes(data) > 0
    with gateway(tmp_path, pg, openai_upstream, data):
        rows = wait_rows(pg, made["id"], 31)
    assert len(rows) == len(set(rows)) == 31
    assert set(during) <= set(rows)


def test_spend_of_a_gateway_killed_with_sigkill_arrives_when_it_starts_again(
        tmp_path: Path, pg: PrivatePostgres, openai_upstream: OpenAIUpstream) -> None:
    data = tmp_path / "data"
    with gateway(tmp_path, pg, openai_upstream, data, flush=3600) as g:  # no batch before the kill
        made = create_key(g, name="sigkill")
        answered = send(g, made["key"], 25)
        assert g.proc is not None
        os.killpg(g.proc.pid, signal.SIGKILL)  # no shutdown: nothing flushed, the queue in memory gone
        g.proc.wait(10)
    assert pg.rows(made["id"]) == []  # not one record reached the database before the kill
    assert journal_bytes(data) > 0
    with gateway(tmp_path, pg, openai_upstream, data):
        rows = wait_rows(pg, made["id"], 25)
    assert sorted(rows) == sorted(answered)  # every answered request once
