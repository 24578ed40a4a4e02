"""Hot reload of `mcp:`: a real `clawdbot serve` whose config file is edited and reloaded with
SIGHUP (servers added, removed, changed and kept; access rules; metrics.key_labels), and the hub
in process for a replaced server's call in flight."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any, cast

import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from clawdbot.config.mcp_schema import Mcp, McpAccessRule, McpAgent, McpServer
from clawdbot.config.schema import Config, MetricsSettings
from clawdbot.mcp.agent_http import HttpAgent
from clawdbot.mcp.build import reloaded
from clawdbot.mcp.hub import Caller, Hub
from clawdbot.tenancy.principal import MASTER as MASTER_PRINCIPAL
from tests.e2e.harness import GatewayProcess, http_call, until
from tests.mcp.conftest import MASTER, PEER, connect
from tests.mcp.test_gateway import new_key, text


def peer(name: str, env: str = "{}") -> str:
    return f"""    - name: {name}
      command: {json.dumps(sys.executable)}
      args: [{json.dumps(PEER)}, stdio]
      env: {env}
"""


def config(servers: str, allow: str, key_labels: bool) -> str:
    return f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
  watch_interval: 0
services:
  - name: m
    type: mock
metrics:
  key_labels: {json.dumps(key_labels)}
mcp:
  servers:
{servers}  access:
    - allow: {allow}
"""


BEFORE = config(peer("kept") + peer("old") + peer("moved", "{MARK_ONE: '1'}"), '["kept.echo"]', False)
AFTER = config(peer("kept") + peer("moved", "{MARK_TWO: 'sekrit-value-2'}") + peer("fresh"),
               '["kept.environment", "fresh"]', True)


def started(log: str, name: str) -> list[int]:
    return [int(p) for p in re.findall(rf"mcp server {name} started \(pid (\d+)\)", log)]


def gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


async def tools(gw: GatewayProcess, key: str = MASTER) -> set[str]:
    async with connect(gw, key) as c:
        return {t.name for t in (await c.list_tools()).tools}


async def call(gw: GatewayProcess, name: str, key: str = MASTER) -> types.CallToolResult:
    async with connect(gw, key) as c:
        return await c.call_tool(name, {"text": "x"} if name.endswith("echo") else {})


async def refused(gw: GatewayProcess, name: str, key: str) -> str:
    async with connect(gw, key) as c:
        with pytest.raises(MCPError) as exc:
            await c.call_tool(name, {})
    return exc.value.error.message


def test_a_reload_applies_a_changed_mcp_section(tmp_path: Path) -> None:
    path = tmp_path / "clawdbot.yaml"
    path.write_text(BEFORE)
    with GatewayProcess(["serve", "--config", str(path)], tmp_path / "gateway.log",
                        {"TEST_MASTER_KEY": MASTER}) as gw:
        key = new_key(gw, "reloaded")
        listed = asyncio.run(tools(gw))
        assert {"kept.echo", "old.echo", "moved.echo"} <= listed and not any(n.startswith("fresh.") for n in listed)
        for name in ("kept.echo", "old.echo"):
            assert not asyncio.run(call(gw, name)).is_error
        assert "MARK_ONE" in text(asyncio.run(call(gw, "moved.environment")))
        assert not asyncio.run(call(gw, "kept.echo", key)).is_error
        assert asyncio.run(refused(gw, "kept.environment", key)) == "Unknown tool: kept.environment"
        log = gw.log()
        (kept,), (old,), (moved,) = started(log, "kept"), started(log, "old"), started(log, "moved")
        assert "clawdbot_key_mcp_tool_calls" not in http_call(gw, "GET", "/metrics", headers={
            "Authorization": f"Bearer {MASTER}"})[1].decode()

        path.write_text(AFTER)
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGHUP)
        gw.wait_for_log("config reloaded (SIGHUP)")
        assert "mcp servers reloaded: added fresh, removed old, replaced moved" in gw.log()

        listed = asyncio.run(tools(gw))
        assert "fresh.echo" in listed and "kept.echo" in listed  # a new server's tools appear
        assert not any(n.startswith("old.") for n in listed)  # a removed one's are gone ...
        assert until(lambda: gone(old)), "the removed server's process still runs"  # ... and so is its process
        assert until(lambda: gone(moved)), "the changed server's old process still runs"
        assert "MARK_TWO" in text(asyncio.run(call(gw, "moved.environment")))  # replaced: its new settings
        assert not gone(kept) and started(gw.log(), "kept") == [kept]  # unchanged: the same process
        assert not asyncio.run(call(gw, "kept.echo")).is_error
        # the access rules at once: kept.echo is no longer allowed, kept.environment and fresh.* are
        assert asyncio.run(refused(gw, "kept.echo", key)) == "Unknown tool: kept.echo"
        assert not asyncio.run(call(gw, "kept.environment", key)).is_error
        assert asyncio.run(tools(gw, key)) >= {"kept.environment", "fresh.echo"}
        assert not asyncio.run(call(gw, "fresh.echo", key)).is_error
        # metrics.key_labels switched on by the reload
        body = http_call(gw, "GET", "/metrics", headers={"Authorization": f"Bearer {MASTER}"})[1].decode()
        assert re.search(r'clawdbot_key_mcp_tool_calls_total\{key="k_[^"]+",status="ok",team="none"\} 2.0', body)
        # audited: the section before and after, by the config file, env values masked
        def entries() -> list[dict[str, object]]:
            status, out = http_call(gw, "GET", "/admin/api/audit?action=mcp.update",
                                    headers={"Authorization": f"Bearer {MASTER}"})
            assert status == 200, out
            return list(json.loads(out)["data"])
        [entry] = until(entries)
        assert entry["actor"] == "config file"
        names = [[s["name"] for s in entry[side]["servers"]] for side in ("before", "after")]  # type: ignore[index]
        assert names == [["kept", "old", "moved"], ["kept", "moved", "fresh"]]
        assert "sekrit-value-2" not in json.dumps(entry) and "MARK_TWO" in json.dumps(entry)
        assert "Traceback" not in gw.log()


def test_mcp_added_to_a_gateway_started_without_it_needs_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "clawdbot.yaml"
    path.write_text("server:\n  master_key: ${TEST_MASTER_KEY}\n  watch_interval: 0\n"
                    "services:\n  - name: m\n    type: mock\n")
    with GatewayProcess(["serve", "--config", str(path)], tmp_path / "gateway.log",
                        {"TEST_MASTER_KEY": MASTER}) as gw:
        path.write_text(BEFORE)
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGHUP)
        gw.wait_for_log("config reloaded (SIGHUP)")
        assert "the MCP gateway starts at the next restart" in gw.log()
        status, _ = http_call(gw, "POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"}, {
            "Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"})
        assert status == 404


def stdio_peer(name: str, **env: str) -> McpServer:
    return McpServer(name=name, command=sys.executable, args=[PEER, "stdio"], env=env, timeout=10)


def test_a_replaced_servers_call_in_flight_ends_on_the_old_process() -> None:
    async def run() -> None:
        hub = Hub(Mcp(servers=[stdio_peer("p", MARK="1")], access=[McpAccessRule(allow=["*"])]),
                  dict(os.environ), False, lambda line: None)
        await hub.start()
        caller = Caller(MASTER_PRINCIPAL, "r1")
        try:
            old = hub.upstreams["p"]
            slow = asyncio.create_task(hub.call_tool(caller, "p.slow", {"seconds": 1.0}))
            for _ in range(1000):  # bounded: the call has reached the server
                if old.in_flight:
                    break
                await asyncio.sleep(0.01)
            assert old.in_flight == 1
            changes = hub.apply(Mcp(servers=[stdio_peer("p", MARK="2")]))
            assert changes == {"added": [], "removed": [], "replaced": ["p"]}
            new = hub.upstreams["p"]
            assert new is not old and old.retired and old.running  # stopped only after its call
            assert text(await slow) == "done"
            assert text(await hub.call_tool(caller, "p.echo", {"text": "new"})) == "new"
            await asyncio.gather(*list(hub._retiring))
            assert not old.running and new.running
            # no rule now: the master key still sees everything; unchanged servers keep their session
            assert hub.apply(Mcp(servers=[stdio_peer("p", MARK="2")])) == {"added": [], "removed": [], "replaced": []}
            assert hub.upstreams["p"] is new
        finally:
            await hub.close()

    asyncio.run(run())


def test_a_reload_applies_the_agent_settings_and_key_labels() -> None:
    async def run() -> None:
        hub = Hub(Mcp(), {}, False, lambda line: None)
        agent = HttpAgent(hub, cast(Any, None), McpAgent())
        section, no_audit = [Mcp()], (None, set[asyncio.Task[None]]())
        reloaded(hub, agent, Config(mcp=Mcp(agent=McpAgent(max_steps=3, max_tools=5)),
                                    metrics=MetricsSettings(key_labels=True, max_key_series=7)), section, no_audit)()
        assert agent.settings.max_steps == 3 and agent.settings.max_tools == 5
        assert hub.calls.keys == {} and hub.calls.max_keys == 7
        assert section[0].agent.max_steps == 3  # the section now served, for the next audit entry
        reloaded(hub, agent, Config(), section, no_audit)()
        assert agent.settings == McpAgent() and hub.calls.key_snapshot() is None
        await hub.close()

    asyncio.run(run())
