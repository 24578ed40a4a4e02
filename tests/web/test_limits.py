"""Rate limits per user and per session, and a client that stops reading."""

from __future__ import annotations

import asyncio

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.e2e.harness import GatewayProcess
from tests.upstreams.openai_server import OpenAIUpstream
from tests.web.client import WsClient, run
from tests.web.conftest import StartGateway
from tests.web.test_resume import wait_sockets


def chat_calls(upstream: OpenAIUpstream) -> int:
    return sum(1 for r in upstream.requests if r.path == "/v1/chat/completions")


@pytest.fixture(scope="module")
def limited(start_gateway: StartGateway) -> GatewayProcess:
    return start_gateway(web="rate_limits: {per_user_per_minute: 3, per_session_per_minute: 2}")


def test_rate_limits_per_session_and_per_user(limited: GatewayProcess, upstream: OpenAIUpstream) -> None:
    async def body() -> None:
        async with await WsClient.connect(limited.url) as c:
            first, _ = await c.chat("one")
            sid = first["sessionId"]
            await c.chat("two", sessionId=sid)
            calls = chat_calls(upstream)
            res = await c.request("chat.send", {"sessionId": sid, "text": "three"})
            assert res["ok"] is False and res["error"]["code"] == "rate_limited"
            assert 0 < res["error"]["retryAfter"] <= 60
            got = await c.call("sessions.get", {"sessionId": sid})
            assert got["session"]["messageCount"] == 4  # the refused message was not stored
            other, _ = await c.chat("another session")  # the user's third of three
            assert other["state"] == "final" and other["sessionId"] != sid
            sessions = len((await c.call("sessions.list"))["sessions"])
            res = await c.request("chat.send", {"text": "fourth this minute"})
            assert res["error"]["code"] == "rate_limited" and res["error"]["retryAfter"] > 0
            assert len((await c.call("sessions.list"))["sessions"]) == sessions  # nothing created
            assert chat_calls(upstream) == calls + 1  # only the allowed one went upstream
            # other methods are not limited
            await c.call("status")

    run(body())


def test_a_client_that_stops_reading_is_cut_off(start_gateway: StartGateway) -> None:
    gw = start_gateway()
    big = "x" * 60_000  # one word: the answer is "echo: " + it, two chunks

    async def body() -> None:
        async with await WsClient.connect(gw.url) as monitor:
            end, _ = await monitor.chat(big)
            sid = end["sessionId"]
            # a history of ~120 KB per sessions.get answer; 400 asked for, none read
            ws = await websockets.connect(gw.url.replace("http", "ws") + "/ws", proxy=None, max_queue=1,
                                          max_size=None)
            for i in range(400):
                await ws.send(f'{{"type":"req","id":{i},"method":"sessions.get","params":{{"sessionId":"{sid}"}}}}')
            await wait_sockets(monitor, 1, 30)
            received = 0
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(30):
                    while True:
                        await ws.recv()
                        received += 1
            assert received < 401  # cut off, not answered in full
            # the gateway is fine
            assert (await monitor.call("status"))["user"] == "local"

    run(body(), timeout=90)
    assert "the client stopped reading" in gw.wait_for_log("the client stopped reading")
