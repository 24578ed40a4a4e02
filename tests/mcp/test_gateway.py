"""The official `mcp` client against a real `clawdbot serve` fronting real MCP servers."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from tests.e2e.harness import GatewayProcess, http_call
from tests.mcp.conftest import MASTER, connect


def text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def new_key(gw: GatewayProcess, name: str) -> str:
    status, out = http_call(gw, "POST", "/admin/api/keys", {"name": name},
                            {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"})
    assert status == 201, out
    return str(json.loads(out)["key"])


def names(tools: list[types.Tool]) -> set[str]:
    return {t.name for t in tools}


def test_tools_of_every_server_are_listed_under_their_namespace(gateway: GatewayProcess) -> None:
    async def run() -> set[str]:
        async with connect(gateway) as c:
            return names((await c.list_tools()).tools)

    listed = asyncio.run(run())
    assert {"time.get_current_time", "time.convert_time", "peer.echo", "peer.crash", "web.echo",
            "web.slow", "web.huge", "peer.secret_tool"} <= listed
    assert all("." in n for n in listed)


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # the 2026 protocol and the initialize handshake
def test_a_call_reaches_its_server(gateway: GatewayProcess, mode: str) -> None:
    async def run() -> tuple[types.CallToolResult, types.CallToolResult, types.CallToolResult]:
        async with connect(gateway, mode=mode) as c:
            now = await c.call_tool("time.get_current_time", {"timezone": "UTC"})
            echo = await c.call_tool("peer.echo", {"text": "over stdio"})
            web = await c.call_tool("web.echo", {"text": "over http"})
            return now, echo, web

    now, echo, web = asyncio.run(run())
    assert not now.is_error and "UTC" in text(now)
    assert text(echo) == "over stdio" and text(web) == "over http"
    log = gateway.wait_for_log("tool=get_current_time status=ok")
    line = next(x for x in log.splitlines() if "tool=get_current_time status=ok" in x)
    assert "server=time" in line and "result_bytes=" in line and "latency_ms=" in line
    assert "over stdio" not in log and "over http" not in log  # never arguments or results


def test_a_hidden_tool_is_absent_and_refused(gateway: GatewayProcess) -> None:
    key = new_key(gateway, "hidden")

    async def run() -> tuple[set[str], str, str]:
        async with connect(gateway, key) as c:
            listed = names((await c.list_tools()).tools)
            with pytest.raises(MCPError) as hidden:
                await c.call_tool("peer.secret_tool", {})
            with pytest.raises(MCPError) as missing:
                await c.call_tool("peer.no_such_tool", {})
            return listed, hidden.value.error.message, missing.value.error.message

    listed, hidden, missing = asyncio.run(run())
    assert "peer.secret_tool" not in listed and "web.slow" not in listed  # deny, and not allowed
    assert {"peer.echo", "time.get_current_time", "web.echo"} <= listed
    assert hidden == "Unknown tool: peer.secret_tool"  # the same answer as a tool that does not exist
    assert missing == "Unknown tool: peer.no_such_tool"


def test_a_keys_calls_per_minute_are_limited(gateway: GatewayProcess) -> None:
    key = new_key(gateway, "limited")

    async def run() -> tuple[list[bool], MCPError]:
        async with connect(gateway, key) as c:
            ok = [not (await c.call_tool("peer.echo", {"text": "x"})).is_error for _ in range(3)]
            with pytest.raises(MCPError) as limited:
                await c.call_tool("peer.echo", {"text": "x"})
            return ok, limited.value

    ok, limited = asyncio.run(run())
    assert ok == [True, True, True]
    assert limited.error.message.startswith("rate_limited: 3 MCP tool calls per minute")

    async def master() -> bool:  # another caller is not limited by this key's count
        async with connect(gateway) as c:
            return not (await c.call_tool("peer.echo", {"text": "x"})).is_error

    assert asyncio.run(master())


def test_a_crashing_stdio_server_is_restarted(gateway: GatewayProcess) -> None:
    async def run() -> tuple[types.CallToolResult, types.CallToolResult]:
        async with connect(gateway) as c:
            crashed = await c.call_tool("peer.crash", {})
            after = await c.call_tool("peer.echo", {"text": "back"})
            return crashed, after

    crashed, after = asyncio.run(run())
    assert crashed.is_error and text(crashed).startswith("unavailable: MCP server 'peer'")
    assert not after.is_error and text(after) == "back"
    gateway.wait_for_log("mcp server peer restarted")
    assert http_call(gateway, "GET", "/healthz")[0] == 200


def test_a_slow_tool_times_out(gateway: GatewayProcess) -> None:
    async def run() -> types.CallToolResult:
        async with connect(gateway) as c:
            return await c.call_tool("web.slow", {"seconds": 20})

    started = time.monotonic()
    result = asyncio.run(run())
    assert result.is_error and text(result) == "timeout: the tool did not answer within 2.0 s"
    assert time.monotonic() - started < 15
    gateway.wait_for_log("tool=slow status=timeout")


def test_a_huge_result_is_bounded(gateway: GatewayProcess) -> None:
    async def run() -> list[types.CallToolResult]:
        async with connect(gateway) as c:
            return [await c.call_tool("web.huge", {"size": 110_000}),  # ~220 kB (text + structured): read, refused
                    await c.call_tool("web.huge", {"size": 5_000_000}),  # over the read cap: cut while read
                    await c.call_tool("web.huge", {"size": 1000}),  # the same session goes on
                    await c.call_tool("peer.huge", {"size": 1_000_000}),  # over the line limit: never read
                    await c.call_tool("peer.huge", {"size": 1000})]

    web, web_cut, web_small, stdio, small = asyncio.run(run())
    assert web.is_error and text(web).startswith("result_too_large: the result is ")
    assert text(web).endswith("the limit is 100000")
    assert web_cut.is_error and text(web_cut) == "result_too_large: the result exceeds 100000 bytes"
    assert not web_small.is_error and text(web_small) == "x" * 1000
    assert stdio.is_error and text(stdio) == "result_too_large: the result exceeds 20000 bytes"
    assert not small.is_error and text(small) == "x" * 1000
    log = gateway.wait_for_log("server=web tool=huge status=too_large")
    assert http_call(gateway, "GET", "/healthz")[0] == 200
    assert "Traceback" not in log


def test_a_stdio_servers_environment_is_its_allow_list(gateway: GatewayProcess) -> None:
    async def run() -> str:
        async with connect(gateway) as c:
            return text(await c.call_tool("peer.environment", {}))

    env = set(asyncio.run(run()).split(","))
    assert {"PEER_MARK", "TEST_ALLOWED"} <= env
    assert env - {"PEER_MARK", "TEST_ALLOWED", "LC_CTYPE"} == set()  # Python may set LC_CTYPE (PEP 538)


def rpc(gw: GatewayProcess, payload: dict[str, Any], key: str | None = MASTER) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-06-18"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    status, body = http_call(gw, "POST", "/mcp", payload, headers)
    return status, json.loads(body) if body else None


def test_no_request_field_changes_what_a_stdio_server_runs(gateway: GatewayProcess, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = {"command": "/bin/sh", "args": ["-c", f"touch {marker}"], "env": {"EVIL": "1"}, "cwd": "/"}
    params = {"name": "peer.environment", "arguments": {}, **evil, "_meta": evil}
    status, out = rpc(gateway, {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})
    assert status == 200, out
    assert "EVIL" not in json.dumps(out) and not marker.exists()
    assert "PEER_MARK" in out["result"]["content"][0]["text"]
    for method in ("POST", "PATCH", "PUT"):  # nor the admin API: it has no MCP endpoint at all
        s, _ = http_call(gateway, method, "/admin/api/mcp/servers/peer", evil,
                         {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"})
        assert s in (404, 405)
    assert not marker.exists()


def test_mcp_needs_a_key(gateway: GatewayProcess) -> None:
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert rpc(gateway, ping, key=None)[0] == 401
    assert rpc(gateway, ping, key="sk-cb-wrong")[0] == 401
    status, out = rpc(gateway, ping)
    assert status == 200 and out == {"jsonrpc": "2.0", "id": 1, "result": {}}


def test_calls_are_counted_in_metrics(gateway: GatewayProcess) -> None:
    async def run() -> None:
        async with connect(gateway) as c:
            await c.call_tool("time.get_current_time", {"timezone": "UTC"})

    asyncio.run(run())
    status, body = http_call(gateway, "GET", "/metrics", headers={"Authorization": f"Bearer {MASTER}"})
    assert status == 200
    assert 'clawdbot_mcp_tool_calls_total{server="time",status="ok",tool="get_current_time"}' in body.decode()
    assert "clawdbot_key_mcp_tool_calls" not in body.decode()  # metrics.key_labels is off


def test_a_client_that_goes_away_cancels_its_call(gateway: GatewayProcess) -> None:
    call = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                       "params": {"name": "peer.slow", "arguments": {"seconds": 29.5}}}).encode()
    head = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {MASTER}\r\n"
            f"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            f"MCP-Protocol-Version: 2025-06-18\r\nContent-Length: {len(call)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=20) as sock:
        sock.sendall(head + call)
        gateway.wait_for_log("mcp server peer: slow 29.5: started")  # the call reached the stdio server
        starts = gateway.log().count("mcp server peer started")
    # gone well before the server's 5 s timeout: the call ends as cancelled, and the server is told
    # (notifications/cancelled: its handler is cancelled)
    log = gateway.wait_for_log("mcp server peer: slow 29.5: cancelled", timeout=4)
    line = gateway.wait_for_log("tool=slow status=cancelled", timeout=4)
    assert "server=peer tool=slow status=cancelled" in line
    assert "status=timeout" not in log.split("slow 29.5: started", 1)[1]
    assert asyncio.run(_echo(gateway)) == "still here"  # the session goes on ...
    assert gateway.log().count("mcp server peer started") == starts  # ... on the same process: told, not killed


async def _echo(gw: GatewayProcess) -> str:
    async with connect(gw) as c:
        return text(await c.call_tool("peer.echo", {"text": "still here"}))
