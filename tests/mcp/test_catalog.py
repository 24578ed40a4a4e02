"""Prompts and resources of real MCP servers through a real `clawdbot serve` (mcp/catalog.py):
aggregated under `server.`, hidden ones absent and refused alike, huge ones bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from tests.e2e.harness import GatewayProcess, http_call
from tests.mcp.conftest import connect
from tests.mcp.test_gateway import new_key


def test_prompts_and_resources_of_every_server_are_listed_under_their_namespace(gateway: GatewayProcess) -> None:
    async def run() -> tuple[set[str], set[str]]:
        async with connect(gateway) as c:
            prompts = {p.name for p in (await c.list_prompts()).prompts}
            resources = {r.uri for r in (await c.list_resources()).resources}
            return prompts, resources

    prompts, resources = asyncio.run(run())
    assert prompts == {"peer.greet", "peer.secret_prompt", "web.greet", "web.secret_prompt"}
    assert resources == {f"{s}.note://{n}" for s in ("peer", "web") for n in ("greeting", "secret", "huge")}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_a_prompt_and_a_resource_reach_their_server(gateway: GatewayProcess, mode: str) -> None:
    async def run() -> tuple[types.GetPromptResult, types.ReadResourceResult, types.ReadResourceResult]:
        async with connect(gateway, mode=mode) as c:
            return (await c.get_prompt("web.greet", {"name": "Ada"}),
                    await c.read_resource("peer.note://greeting"), await c.read_resource("web.note://greeting"))

    prompt, stdio, web = asyncio.run(run())
    message = prompt.messages[0].content
    assert isinstance(message, types.TextContent) and message.text == "Say hello to Ada."
    for result, server in ((stdio, "peer"), (web, "web")):
        content = result.contents[0]
        assert isinstance(content, types.TextResourceContents) and content.text == "hello from the peer"
        assert content.uri == f"{server}.note://greeting"  # as the caller knows it
    log = gateway.wait_for_log("event=mcp_resource")
    assert "event=mcp_prompt" in log and "server=web tool=greet status=ok" in log
    assert "server=peer tool=note://greeting status=ok" in log


def test_a_hidden_prompt_or_resource_is_absent_and_refused(gateway: GatewayProcess) -> None:
    key = new_key(gateway, "catalog")

    async def refused(call: Awaitable[object]) -> str:
        with pytest.raises(MCPError) as err:
            await call
        assert err.value.error.code == types.INVALID_PARAMS
        return err.value.error.message

    async def run() -> tuple[set[str], set[str], list[str]]:
        async with connect(gateway, key) as c:
            prompts = {p.name for p in (await c.list_prompts()).prompts}
            resources = {r.uri for r in (await c.list_resources()).resources}
            messages = [await refused(c.get_prompt("peer.secret_prompt")),
                        await refused(c.get_prompt("web.secret_prompt")),  # not allowed
                        await refused(c.get_prompt("peer.no_such_prompt")),
                        await refused(c.read_resource("peer.note://secret")),
                        await refused(c.read_resource("web.note://huge")),  # not allowed
                        await refused(c.read_resource("nowhere.note://x"))]
            return prompts, resources, messages

    prompts, resources, messages = asyncio.run(run())
    assert prompts == {"peer.greet", "web.greet"}
    assert resources == {"peer.note://greeting", "peer.note://huge", "web.note://greeting"}
    assert messages[:2] == ["Unknown prompt: peer.secret_prompt", "Unknown prompt: web.secret_prompt"]
    assert messages[2] == "Unknown prompt: peer.no_such_prompt"  # as for a hidden one
    assert messages[3:] == ["Unknown resource: peer.note://secret", "Unknown resource: web.note://huge",
                            "Unknown resource: nowhere.note://x"]


def test_a_huge_resource_is_bounded(gateway: GatewayProcess) -> None:
    async def run() -> list[str]:
        out = []
        async with connect(gateway) as c:
            for uri in ("web.note://huge", "peer.note://huge"):
                with pytest.raises(MCPError) as err:
                    await c.read_resource(uri)
                out.append(err.value.error.message)
            ok = await c.read_resource("web.note://greeting")  # the session goes on
            assert ok.contents[0].uri == "web.note://greeting"
        return out

    assert asyncio.run(run()) == ["result_too_large: the result exceeds 100000 bytes",
                                  "result_too_large: the result exceeds 20000 bytes"]
    log = gateway.wait_for_log("server=web tool=note://huge status=too_large")
    assert http_call(gateway, "GET", "/healthz")[0] == 200
    assert "Traceback" not in log
