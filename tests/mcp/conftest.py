"""A real `clawdbot serve` with three MCP upstreams: mcp-server-time and the tests' peer over
stdio, and the peer over Streamable HTTP (its own process)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.harness import GatewayProcess, free_port, stop_group, wait_ready
from tests.upstreams.openai_server import OpenAIUpstream

MASTER = "sk-master-mcp-tests-0123456789"
PEER = str(Path(__file__).with_name("peer.py"))


def stdio_servers(peer_timeout: float) -> str:
    """The `mcp.servers` entries both test modules start: mcp-server-time and the peer over stdio
    (the peer's further keys follow in the caller's text, at the same indentation)."""
    py = json.dumps(sys.executable)
    return f"""    - name: time
      command: {py}
      args: ["-m", "mcp_server_time", "--local-timezone", "UTC"]
    - name: peer
      command: {py}
      args: [{json.dumps(PEER)}, stdio]
      timeout: {peer_timeout:g}
      restart_backoff: 0.1
"""


def config(http_port: int) -> str:
    return f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
services:
  - name: m
    type: mock
mcp:
  servers:
{stdio_servers(5)}      env: {{PEER_MARK: "1"}}
      env_allow: [TEST_ALLOWED]
      max_result_bytes: 20000
    - name: web
      url: http://127.0.0.1:{http_port}/mcp
      headers: {{X-Peer-Token: "${{TEST_PEER_TOKEN}}"}}
      timeout: 2
      max_result_bytes: 100000
  access:
    - allow: ["time", "peer.*", "web.echo", "web.greet", "web.note://greeting"]
      deny: ["peer.secret_tool", "peer.secret_prompt", "peer.note://secret"]
      calls_per_minute: 3
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIUpstream]:
    """The model of the modules whose gateway has one (the agent loop's tool calls)."""
    with OpenAIUpstream() as up:
        yield up


def serve_yaml(tmp: Path, text: str) -> Iterator[GatewayProcess]:
    """A `clawdbot serve` on `text` (its master key MASTER) until the fixture yielding from this ends."""
    path = tmp / "clawdbot.yaml"
    path.write_text(text)
    with GatewayProcess(["serve", "--config", str(path)], tmp / "gateway.log", {"TEST_MASTER_KEY": MASTER}) as g:
        yield g


@pytest.fixture(scope="module")
def http_peer() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, PEER, "http", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_ready(proc, lambda: _listening(port), "mcp peer", lambda: "", 30.0, poll=0.05)
        yield port
    finally:
        stop_group(proc)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, http_peer: int) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("mcp")
    path = tmp / "clawdbot.yaml"
    path.write_text(config(http_peer))
    env = {"TEST_MASTER_KEY": MASTER, "TEST_ALLOWED": "yes", "TEST_SECRET": "no", "TEST_PEER_TOKEN": "t0ken"}
    with GatewayProcess(["serve", "--config", str(path)], tmp / "gateway.log", env) as gw:
        yield gw


@asynccontextmanager
async def connect(gw: GatewayProcess, key: str | None = MASTER, mode: str = "auto") -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (httpx2.AsyncClient(headers=headers, timeout=30) as http,
                Client(streamable_http_client(gw.url + "/mcp", http_client=http), mode=mode) as client):
        yield client
