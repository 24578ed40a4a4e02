"""Calls per minute shared by two real `clawdbot serve` processes through the real Redis (the
tenancy limiter, mcp/limits.py), and refused, never waved through, when Redis is unreachable."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError

from tests.e2e.harness import GatewayProcess, closed_port
from tests.mcp.conftest import MASTER, PEER, connect
from tests.tenancy.redis_support import REDIS_URL, fresh_prefix

PER_MINUTE = 4


def config(redis_url: str, prefix: str) -> str:
    return f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
redis_url: {redis_url}
redis_prefix: "{prefix}"
services:
  - name: m
    type: mock
mcp:
  servers:
    - name: peer
      command: {json.dumps(sys.executable)}
      args: [{json.dumps(PEER)}, stdio]
  access:
    - keys: [master]
      calls_per_minute: {PER_MINUTE}
"""


def process(d: Path, name: str, cfg: Path) -> GatewayProcess:
    return GatewayProcess(["serve", "--config", str(cfg)], d / f"gateway-{name}.log",
                          {"TEST_MASTER_KEY": MASTER, "CLAWDBOT_DATA_DIR": str(d / name)})


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[GatewayProcess]]:
    d = tmp_path_factory.mktemp("mcp-replicas")
    with fresh_prefix() as prefix:
        cfg = d / "clawdbot.yaml"
        cfg.write_text(config(REDIS_URL, prefix))
        gws: list[GatewayProcess] = []
        try:
            for name in ("a", "b"):
                gws.append(process(d, name, cfg).start())
            yield gws
        finally:
            for g in gws:
                g.stop()


async def echo(gw: GatewayProcess) -> str:
    """`ok`, or the JSON-RPC error's message."""
    async with connect(gw) as c:
        try:
            result = await c.call_tool("peer.echo", {"text": "x"})
        except MCPError as exc:
            assert exc.error.code == -32029
            return exc.error.message
        assert not result.is_error
        return "ok"


def test_calls_per_minute_hold_across_two_processes(pair: list[GatewayProcess]) -> None:
    async def run() -> list[str]:
        return [await echo(pair[i % 2]) for i in range(PER_MINUTE + 3)]

    results = asyncio.run(run())
    assert results[:PER_MINUTE] == ["ok"] * PER_MINUTE  # each process admitted only half of them
    assert all(r.startswith(f"rate_limited: {PER_MINUTE} MCP tool calls per minute; retry in ")
               for r in results[PER_MINUTE:]), results
    for g in pair:
        assert "status=rate_limited" in g.wait_for_log("status=rate_limited")


def test_calls_are_refused_when_redis_is_unreachable(tmp_path: Path) -> None:
    cfg = tmp_path / "clawdbot.yaml"
    cfg.write_text(config(f"redis://127.0.0.1:{closed_port()}/0", "clawdbot-test-down:"))
    with process(tmp_path, "down", cfg) as g:
        message = asyncio.run(echo(g))
        assert message == ("rate_limited: unavailable: MCP calls per minute cannot be counted right now; "
                           "retry in 1 s")
        g.wait_for_log("status=unavailable")
        assert "Traceback" not in g.log()
