"""Reconnecting: connect.resume replays what a dropped socket missed; an expired or unknown
connection answers not_found and the client reloads finished messages from history."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.e2e.harness import GatewayProcess
from tests.web.client import WsClient, run
from tests.web.conftest import UNLIMITED, StartGateway


def drop(c: WsClient) -> None:
    """The network goes away: no close frame, the TCP connection is just gone."""
    c.ws.transport.abort()


async def wait_sockets(monitor: WsClient, n: int, seconds: float = 10.0) -> None:
    """Until the gateway counts `n` open sockets (it has noticed a drop)."""
    async def open_sockets() -> int:
        count: int = (await monitor.call("debug"))["processes"][0]["load"]["wsConnections"]
        return count

    async with asyncio.timeout(seconds):
        while await open_sockets() != n:  # noqa: ASYNC110 (polling a condition only the server knows)
            await asyncio.sleep(0.02)


def chat_payloads(frames: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    return [f for f in frames if f.get("event") == "chat" and f["payload"]["runId"] == run_id]


def test_resume_mid_stream_loses_nothing(gw: GatewayProcess) -> None:
    async def body() -> None:
        a = await WsClient.connect(gw.url)
        hello = (await a.hello())["payload"]
        sent = await a.call("chat.send", {"text": "fault:chunks=30 fault:slow=30 resume me"})
        run_id = sent["runId"]
        await a.wait(lambda: len(chat_payloads(a.frames, run_id)) >= 5)
        before = [f for f in a.frames if f.get("type") == "event"]
        last_seq = before[-1]["seq"]
        drop(a)
        await a.wait(lambda: a.closed is not None)

        async with await WsClient.connect(gw.url) as b:
            res = await b.call("connect.resume", {"connId": hello["connId"], "resumeToken": hello["resumeToken"],
                                                  "lastSeq": last_seq})
            assert res["resumed"] is True and res["connId"] == hello["connId"]
            end = await b.run_end(run_id)
            after = [f for f in b.frames if f.get("type") == "event" and f.get("event") != "hello"]
            assert res["replayed"] == len([f for f in after if f["seq"] <= res["lastSeq"]])
            seqs = [f["seq"] for f in before + after]
            assert seqs == list(range(1, len(seqs) + 1))  # nothing lost, nothing twice
            events = chat_payloads(before + after, run_id)
            deltas = [e["payload"]["delta"] for e in events if e["payload"]["state"] == "delta"]
            assert len(deltas) == 30 and events[-1] is end
            assert end["payload"]["state"] == "final" and end["payload"]["message"]["content"] == "".join(deltas)
            # the socket goes on with the old numbering
            await b.chat("still here")
            later = [f["seq"] for f in b.frames if f.get("type") == "event" and f.get("event") != "hello"]
            assert later == list(range(last_seq + 1, later[-1] + 1))

    run(body())


def test_resume_of_an_unknown_connection_is_not_found_and_the_socket_starts_afresh(gw: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as a:
            hello = (await a.hello())["payload"]
            async with await WsClient.connect(gw.url) as b:
                fresh = (await b.hello())["payload"]
                res = await b.request("connect.resume", {"connId": hello["connId"], "resumeToken": "r_wrong",
                                                         "lastSeq": 1})
                assert res["ok"] is False and res["error"]["code"] == "not_found"
                end, _ = await b.chat("fresh start")  # the connection its hello announced
                assert end["state"] == "final"
                assert b.seqs() == list(range(1, len(b.seqs()) + 1))
                assert fresh["connId"] != hello["connId"]
            async with await WsClient.connect(gw.url) as c:
                res = await c.request("connect.resume", {"connId": "c_nope", "resumeToken": "r_x", "lastSeq": 0})
                assert res["error"]["code"] == "not_found"
            async with await WsClient.connect(gw.url) as d:
                await d.call("status")
                res = await d.request("connect.resume", {"connId": hello["connId"],
                                                         "resumeToken": hello["resumeToken"], "lastSeq": 1})
                assert res["error"]["code"] == "bad_params"  # only as the first request

    run(body())


@pytest.fixture(scope="module")
def forgetful(start_gateway: StartGateway) -> GatewayProcess:
    """Connections are forgotten as soon as their socket drops, and hold 5 events."""
    return start_gateway(web=UNLIMITED + "\nresume_seconds: 0\nresume_events: 5")


def test_expired_connection_is_not_found_and_history_has_the_finished_answer(forgetful: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(forgetful.url) as monitor:
            a = await WsClient.connect(forgetful.url)
            hello = (await a.hello())["payload"]
            sent = await a.call("chat.send", {"text": "fault:chunks=20 fault:slow=20 keep going"})
            await a.wait(lambda: len(chat_payloads(a.frames, sent["runId"])) >= 2)
            last_seq = max(a.seqs())
            drop(a)
            await wait_sockets(monitor, 1)
            async with await WsClient.connect(forgetful.url) as b:
                res = await b.request("connect.resume", {"connId": hello["connId"],
                                                         "resumeToken": hello["resumeToken"], "lastSeq": last_seq})
                assert res["ok"] is False and res["error"]["code"] == "not_found"
                # the run went on without a socket and was stored: reload it from history
                async with asyncio.timeout(15):
                    while True:
                        got = await b.call("sessions.get", {"sessionId": sent["sessionId"]})
                        if len(got["messages"]) == 2 and got["running"] is None:
                            break
                        await asyncio.sleep(0.05)  # polling the store for the finished run
                answer = got["messages"][1]
                assert answer["status"] == "complete" and answer["content"].startswith("echo:")
                assert len(answer["content"].split()) == 20 and answer["trace"]["requestId"]

    run(body())


def test_events_no_longer_held_is_not_found(forgetful: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(forgetful.url) as a:
            hello = (await a.hello())["payload"]
            await a.chat("fault:chunks=12 twelve")  # 15 events: more than the 5 held
            await a.wait(lambda: a.frames[-1].get("event") == "session")  # the one after the final
            last = max(a.seqs())
            # a second socket may take the connection over while the first still holds it
            async with await WsClient.connect(forgetful.url) as b:
                res = await b.request("connect.resume", {"connId": hello["connId"],
                                                         "resumeToken": hello["resumeToken"], "lastSeq": 2})
                assert res["error"]["code"] == "not_found"
            async with await WsClient.connect(forgetful.url) as c:
                res = await c.call("connect.resume", {"connId": hello["connId"],
                                                      "resumeToken": hello["resumeToken"], "lastSeq": last - 3})
                assert res["resumed"] is True and res["replayed"] == 3
                await a.wait(lambda: a.closed is not None)  # the old socket was let go
                replay = [f["seq"] for f in c.frames if f.get("type") == "event" and f.get("event") != "hello"]
                assert replay == [last - 2, last - 1, last]

    run(body())
