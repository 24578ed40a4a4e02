"""The control panel's live overview over the chat socket (web/methods.py panel.watch): events for
this socket only, without seq (never replayed on a resume), a request showing in the next one, and
no panel for a key without a panel role."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from clawdbot.web.auth import Principal
from clawdbot.web.connections import Connection
from clawdbot.web.outbox import Outbox
from tests.e2e.harness import GatewayProcess
from tests.web.client import ResError, WsClient, http_request, run
from tests.web.conftest import MASTER_KEY, StartGateway


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway) -> GatewayProcess:
    return start_gateway(server=f"master_key: {MASTER_KEY}")


def cookie(gw: GatewayProcess, key: str) -> str:
    status, headers, _ = http_request(gw.url, "POST", "/auth/login", {"key": key})
    assert status == 200
    return headers["set-cookie"].split(";")[0]


def overviews(c: WsClient) -> list[dict[str, Any]]:
    return [f for f in c.frames if f.get("event") == "panel.overview"]


def test_the_overview_comes_over_the_socket_and_follows_the_traffic(gw: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url, additional_headers={"Cookie": cookie(gw, MASTER_KEY)}) as c:
            await c.hello()
            assert await c.call("panel.watch", {"intervalMs": 1000}) == {"watching": True, "intervalMs": 1000}
            first = await c.frame(lambda f: f.get("event") == "panel.overview")
            assert "seq" not in first and {"series", "services", "models"} <= set(first["payload"])
            seen = sum(first["payload"]["series"]["requests"])
            api = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
            await api.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
            await c.frame(lambda f: f.get("event") == "panel.overview"
                          and sum(f["payload"]["series"]["requests"]) > seen)
            assert await c.call("panel.unwatch") == {"watching": False}
            assert all("seq" not in f for f in overviews(c))
            assert c.seqs() == list(range(1, len(c.seqs()) + 1))  # the numbered events stay gapless

    run(body())


def test_bad_intervals_and_keys_without_a_panel_are_refused(gw: GatewayProcess) -> None:
    status, _, made = http_request(gw.url, "POST", "/admin/api/keys", {"name": "chat-only"},
                                   {"Authorization": f"Bearer {MASTER_KEY}"})
    assert status == 201
    plain = json.loads(made)["key"]

    async def body() -> None:
        async with await WsClient.connect(gw.url, additional_headers={"Cookie": cookie(gw, MASTER_KEY)}) as c:
            await c.hello()
            with pytest.raises(ResError, match="bad_params"):
                await c.call("panel.watch", {"intervalMs": 10})
        async with await WsClient.connect(gw.url, additional_headers={"Cookie": cookie(gw, plain)}) as c:
            await c.hello()
            with pytest.raises(ResError, match="forbidden"):
                await c.call("panel.watch")

    run(body())



def test_a_watch_ends_when_its_payload_says_the_caller_may_no_longer_watch() -> None:
    """The loop behind panel.watch: events while the payload answers, the end at its first None (the
    role re-checked at every event: methods.panel_watch), nothing numbered or kept for a resume."""
    answers: list[dict[str, int] | None] = [{"n": 1}, {"n": 2}, None, {"n": 3}]

    async def payload() -> dict[str, int] | None:
        return answers.pop(0)

    async def body() -> list[str]:
        conn = Connection(Principal("admin", "admin"), keep_events=10)
        conn.outbox = Outbox(max_frames=10)
        conn.watch("panel.overview", payload, 0.0)
        task = conn._watch
        assert task is not None
        await asyncio.wait_for(task, 5)
        assert conn._watch is None and conn.seq == 0 and conn.since(0) == []
        return await conn.outbox.take()

    frames = [json.loads(f) for f in asyncio.run(body())]
    assert [f["payload"]["n"] for f in frames] == [1, 2] and all("seq" not in f for f in frames)
    assert answers == [{"n": 3}]
