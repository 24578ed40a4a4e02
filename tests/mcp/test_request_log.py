"""MCP calls in the request log (mcp/record.py), in a real `clawdbot serve` with the request log on
(SQLite) and the pii plugin: the official `mcp` client calls tools on mcp-server-time and the
tests' peer over stdio, and the records are read back through /admin/api/requests; the agent loop's
calls through the openai package and the OpenAI test upstream."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx2
import mcp_types as types
import openai
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.e2e.harness import GatewayProcess, http_call, until
from tests.mcp.conftest import MASTER, serve_yaml, stdio_servers
from tests.upstreams.openai_server import OpenAIUpstream

EMAIL = "alice.liddell@example.com"


def config(upstream: str) -> str:
    return f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
request_log:
  enabled: true
  flush_interval: 0.05
  max_body_bytes: 400
services:
  - name: oa
    type: openai
    endpoint: {upstream}/v1
models:
  chat: [oa/mock-a]
plugins:
  - name: pii
    with: {{types: [EMAIL]}}
mcp:
  servers:
{stdio_servers(5)}  access:
    - allow: ["time", "peer.*"]
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    yield from serve_yaml(tmp_path_factory.mktemp("mcp-reqlog"), config(upstream.url))


def admin(gw: GatewayProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"}
    status, out = http_call(gw, method, path, body, headers)
    return status, json.loads(out) if out else None


def record(gw: GatewayProcess, rid: str) -> dict[str, Any]:
    def get() -> dict[str, Any] | None:
        status, out = admin(gw, "GET", f"/admin/api/requests/{quote(rid, safe='')}")
        return out if status == 200 else None

    found = until(get)
    assert found, f"{rid} was never logged"
    return dict(found)


def new_key(gw: GatewayProcess, **fields: Any) -> tuple[str, str]:
    """(the key, its id)"""
    status, out = admin(gw, "POST", "/admin/api/keys", {"name": "mcp-log", **fields})
    assert status == 201, out
    return str(out["key"]), str(out["id"])


@asynccontextmanager
async def connect(gw: GatewayProcess, rid: str, key: str = MASTER) -> AsyncIterator[Client]:
    """A session whose HTTP requests all carry X-Request-ID `rid` (the record's id on /mcp)."""
    headers = {"Authorization": f"Bearer {key}", "X-Request-ID": rid}
    async with (httpx2.AsyncClient(headers=headers, timeout=30) as http,
                Client(streamable_http_client(gw.url + "/mcp", http_client=http)) as client):
        yield client


def call(gw: GatewayProcess, name: str, arguments: dict[str, Any],
         key: str = MASTER) -> tuple[str, types.CallToolResult]:
    rid = f"mcp-{uuid.uuid4().hex}"

    async def run() -> types.CallToolResult:
        async with connect(gw, rid, key) as c:
            return await c.call_tool(name, arguments)

    return rid, asyncio.run(run())


def test_a_tool_call_is_a_record_without_bodies_when_body_logging_is_off(gw: GatewayProcess) -> None:
    rid, result = call(gw, "peer.echo", {"text": f"mail {EMAIL}"})
    assert not result.is_error
    rec = record(gw, rid)
    assert rec["path"] == "/mcp" and rec["method"] == "tools/call" and rec["status"] == 200
    assert rec["model"] == "peer.echo" and rec["service"] == "peer" and rec["upstream_model"] == "echo"
    assert rec["principal"] == "master" and rec["key_id"] is None and rec["latency_ms"] > 0
    [attempt] = rec["attempts"]
    assert attempt["ok"] is True and attempt["service"] == "peer" and attempt["result_bytes"] > 0
    assert rec.get("request_body") is None and rec.get("response_body") is None
    assert EMAIL not in json.dumps(rec)
    status, page = admin(gw, "GET", "/admin/api/requests?model=peer.echo&limit=50")
    assert status == 200 and rid in [r["id"] for r in page["data"]]


def test_with_a_keys_log_bodies_arguments_and_result_are_kept_masked(gw: GatewayProcess) -> None:
    key, key_id = new_key(gw, metadata={"log_bodies": True})
    rid, result = call(gw, "peer.echo", {"text": f"mail {EMAIL} today"}, key)
    assert not result.is_error
    assert EMAIL in "".join(c.text for c in result.content if isinstance(c, types.TextContent))  # the tool got it
    rec = record(gw, rid)
    assert rec["key_id"] == key_id and rec["principal"] == key_id and rec["model"] == "peer.echo"
    assert "<EMAIL_1>" in json.dumps(rec["request_body"]) and "<EMAIL_1>" in rec["response_body"]
    assert EMAIL not in json.dumps(rec)
    assert any(n.startswith("pii: masked") for n in rec["plugins"])
    assert rec.get("body_truncated") is not True
    # a result past request_log.max_body_bytes (400) is cut there
    rid, result = call(gw, "peer.huge", {"size": 2000}, key)
    assert not result.is_error
    rec = record(gw, rid)
    assert rec["body_truncated"] is True and len(rec["response_body"].encode()) <= 400


def test_prompts_resources_and_refusals_are_records(gw: GatewayProcess) -> None:
    rid = f"mcp-{uuid.uuid4().hex}"
    rid2 = f"mcp-{uuid.uuid4().hex}"

    async def run() -> MCPError:
        async with connect(gw, rid) as c:
            await c.get_prompt("peer.greet", {"name": "Ann"})
        async with connect(gw, rid2) as c:
            try:
                await c.call_tool("peer.no_such_tool", {})
            except MCPError as exc:
                return exc
        raise AssertionError("an unknown tool was called")

    asyncio.run(run())
    rec = record(gw, rid)
    assert rec["method"] == "prompts/get" and rec["model"] == "peer.greet" and rec["status"] == 200
    rec = record(gw, rid2)
    assert rec["method"] == "tools/call" and rec["status"] == 404 and rec["error_code"] == "unknown_tool"
    assert rec.get("model") is None  # a name a client chose is not logged


def test_the_agent_loops_calls_are_records_tied_to_the_turn(gw: GatewayProcess) -> None:
    rid = f"agent-{uuid.uuid4().hex}"
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=30,
                           default_headers={"X-Clawdbot-Tools": "mcp", "X-Request-ID": rid})
    done = client.chat.completions.create(model="chat", messages=[
        {"role": "user", "content": 'time? call:time__get_current_time{"timezone": "UTC"} '
                                    'call:peer__echo{"text": "hi"}'}])
    assert (done.choices[0].message.content or "").startswith("tool result: ")
    rec = record(gw, f"{rid}-tool-1")  # the turn's calls by their place in what the model asked
    assert rec["path"] == "/mcp" and rec["model"] == "time.get_current_time" and rec["status"] == 200
    assert rec["principal"] == "master" and rec["method"] == "tools/call"
    assert record(gw, f"{rid}-tool-2")["model"] == "peer.echo"
    assert record(gw, rid)["path"] == "/v1/chat/completions"  # the turn itself


def test_a_call_whose_client_goes_away_is_a_cancelled_record(gw: GatewayProcess) -> None:
    """The official client gives up on a slow call and closes its session: the gateway cancels the
    call (the stdio server's handler is cancelled) and records it as cancelled (499)."""
    rid = f"mcp-{uuid.uuid4().hex}"

    async def run() -> None:
        async with connect(gw, rid) as c:
            slow = asyncio.create_task(c.call_tool("peer.slow", {"seconds": 28.5}))
            await asyncio.to_thread(gw.wait_for_log, "mcp server peer: slow 28.5: started")
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
        # leaving the session closes its HTTP connection: the gateway sees the client go away

    asyncio.run(run())
    rec = record(gw, rid)
    assert rec["status"] == 499 and rec["error_code"] == "cancelled" and rec["model"] == "peer.slow"
    log = gw.wait_for_log("mcp server peer: slow 28.5: cancelled", timeout=4)
    assert f"request_id={rid} event=mcp_call key=master server=peer tool=slow status=cancelled" in log
