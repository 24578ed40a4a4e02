"""Per-key MCP tool-call counters in /metrics: only with `metrics.key_labels`, bounded by
`metrics.max_key_series` as the per-key request counters are."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import pytest
from mcp.shared.exceptions import MCPError

from tests.e2e.harness import GatewayProcess, http_call
from tests.mcp.conftest import MASTER, connect, stdio_servers
from tests.mcp.test_gateway import new_key


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("mcp-keys")
    path = tmp / "clawdbot.yaml"
    path.write_text(f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
services:
  - name: m
    type: mock
metrics:
  key_labels: true
  max_key_series: 3
mcp:
  servers:
{stdio_servers(5)}  access:
    - allow: ["peer.echo"]
""")
    with GatewayProcess(["serve", "--config", str(path)], tmp / "gateway.log",
                        {"TEST_MASTER_KEY": MASTER}) as gw:
        yield gw


def scrape(gw: GatewayProcess) -> str:
    status, body = http_call(gw, "GET", "/metrics", headers={"Authorization": f"Bearer {MASTER}"})
    assert status == 200
    return body.decode()


def key_series(body: str) -> dict[tuple[str, str, str], float]:
    found = re.findall(r'^clawdbot_key_mcp_tool_calls_total\{key="([^"]*)",status="([^"]*)",team="([^"]*)"\} (\S+)$',
                       body, re.M)
    return {(k, t, s): float(n) for k, s, t, n in found}


def call(gw: GatewayProcess, key: str, tool: str = "peer.echo") -> None:
    async def run() -> None:
        async with connect(gw, key) as c:
            await c.call_tool(tool, {"text": "x"})

    asyncio.run(run())


def test_per_key_tool_calls_are_counted_with_key_labels_and_bounded(labelled: GatewayProcess) -> None:
    a, b, c = (new_key(labelled, n) for n in ("a", "b", "c"))
    call(labelled, a)
    call(labelled, a)
    call(labelled, b)
    series = key_series(scrape(labelled))
    ids = {k for k, _t, _s in series}
    assert len(ids) == 2 and all(k.startswith("k_") for k in ids)
    assert sorted(series.values()) == [1.0, 2.0]
    assert all(t == "none" and s == "ok" for _k, t, s in series)  # keys without a team
    call(labelled, MASTER)  # the master key has no key id: `none`, the third series
    call(labelled, c)  # past max_key_series (3): `other`
    series = key_series(scrape(labelled))
    assert series[("none", "none", "ok")] == 1.0
    assert series[("other", "other", "ok")] == 1.0
    assert len(series) == 4

    # a hidden tool's refusal counts under its own status
    async def hidden() -> None:
        async with connect(labelled, a) as cl:
            with pytest.raises(MCPError):
                await cl.call_tool("peer.slow", {"seconds": 0})

    asyncio.run(hidden())
    assert any(s == "unknown_tool" for _k, _t, s in key_series(scrape(labelled)))
    assert 'clawdbot_mcp_tool_calls_total{server="peer",status="ok",tool="echo"} 5.0' in scrape(labelled)
