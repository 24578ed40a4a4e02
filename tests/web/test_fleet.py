"""A chat socket and its run on different gateways (web/fleet.py): two real `clawdbot serve`
processes sharing the real Redis and one PostgreSQL database, like two workers or two replicas
behind a load balancer. A run streams on gateway A (the test upstream holds it with `fault:gate` or
`fault:hang_midstream`, so nothing depends on timing); the client's socket drops and resumes the
logical connection on gateway B: every event after its last seq arrives once, in order, then the
live ones, and the final event; the session is busy and `running` on B; chat.abort on B stops the
run on A (the upstream sees the gateway hang up). Without Redis nothing of this is built."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from tests.e2e.harness import GatewayProcess, closed_port
from tests.upstreams.openai_server import OpenAIUpstream
from tests.web.client import ResError, WsClient, run
from tests.web.conftest import config_text

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/0"
Frame = dict[str, Any]


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    name = f"clawdbot_test_fleet_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(PG_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name).render_as_string(
            hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def gated() -> Iterator[OpenAIUpstream]:
    """An upstream of this module's own: its gate is shared by every request to it."""
    with OpenAIUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, gated: OpenAIUpstream,
         database: str) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    prefix = f"fleet-{uuid.uuid4().hex[:8]}:"
    started = []
    for name in ("a", "b"):
        d = tmp_path_factory.mktemp(f"fleet-{name}")
        (d / "clawdbot.yaml").write_text(config_text(gated.url) + f"redis_url: {REDIS}\nredis_prefix: \"{prefix}\"\n"
                                         f"database_url: {database}\n")
        gw = GatewayProcess(["serve", "--config", str(d / "clawdbot.yaml")], d / "gateway.log",
                            {"CLAWDBOT_DATA_DIR": str(d)})
        started.append(gw.start())
        run(_first_use(gw))  # the chat store connects and migrates at its first use: one at a time
    yield started[0], started[1]
    for gw in started:
        gw.stop()


async def _first_use(gw: GatewayProcess) -> None:
    async with await WsClient.connect(gw.url) as c:
        assert (await c.call("sessions.list", seconds=60))["sessions"] is not None, gw.log()[-3000:]


def drop(c: WsClient) -> None:
    """The network goes away: no close frame."""
    c.ws.transport.abort()


def numbered(frames: list[Frame]) -> list[Frame]:
    """The connection's events (the fresh connection's own hello left out)."""
    return [f for f in frames if f.get("type") == "event" and "seq" in f and f.get("event") != "hello"]


async def settled(c: WsClient) -> int:
    """The seq of the run's last event (the session event after its final one)."""
    await c.wait(lambda: numbered(c.frames)[-1]["event"] == "session")
    return int(numbered(c.frames)[-1]["seq"])


def chat(frames: list[Frame], run_id: str, state: str | None = None) -> list[Frame]:
    return [f for f in frames if f.get("event") == "chat" and f["payload"]["runId"] == run_id
            and (state is None or f["payload"]["state"] == state)]


def test_a_socket_resumes_on_another_gateway_while_its_run_streams_on_the_first(
        pair: tuple[GatewayProcess, GatewayProcess], gated: OpenAIUpstream) -> None:
    gw_a, gw_b = pair
    gated.set_gate(False)

    async def body() -> None:
        a = await WsClient.connect(gw_a.url)
        hello = (await a.hello())["payload"]
        sent = await a.call("chat.send", {"text": "fault:chunks=12 fault:gate across the fleet"})
        run_id = sent["runId"]
        await a.wait(lambda: len(chat(a.frames, run_id, "delta")) == 1)  # the gate holds the rest
        seen_on_a = numbered(a.frames)
        drop(a)
        await a.wait(lambda: a.closed is not None)

        b = await WsClient.connect(gw_b.url)
        await b.hello()
        # The client claims to have seen only its hello: the session event and the first delta
        # come back from Redis, the rest live from the run still streaming on A.
        res = await b.call("connect.resume", {"connId": hello["connId"], "resumeToken": hello["resumeToken"],
                                              "lastSeq": 1})
        assert res["resumed"] is True and res["connId"] == hello["connId"], res
        assert res["replayed"] == len(seen_on_a) == 2, (res, seen_on_a)
        gated.set_gate(True)
        end = await b.run_end(run_id)
        after = numbered(b.frames)
        assert [f["seq"] for f in after] == list(range(2, 2 + len(after)))  # in order, none twice, no gap
        assert after[:2] == seen_on_a  # the replay is what A sent
        deltas = [f["payload"]["delta"] for f in chat(after, run_id, "delta")]
        assert len(deltas) == 12 and chat(after, run_id)[-1] == end
        assert end["payload"]["state"] == "final" and end["payload"]["message"]["content"] == "".join(deltas)
        session_id = sent["sessionId"]
        # B's own run on the same (now moved) connection: numbered on, through Redis
        nxt, more = await b.chat("and one on B", sessionId=session_id)
        assert nxt["state"] == "final" and nxt["message"]["content"] == "".join(d["delta"] for d in more)
        await settled(b)
        seqs = [f["seq"] for f in numbered(b.frames)]
        assert seqs == list(range(2, 2 + len(seqs)))
        got = await b.call("sessions.get", {"sessionId": session_id})
        assert got["running"] is None and [m["status"] for m in got["messages"]] == ["complete"] * 4
        # ... and back to A, which held it first: it reads the stream now too, B's reader stops
        last_seq = seqs[-1]
        drop(b)
        async with await WsClient.connect(gw_a.url) as back:
            await back.hello()
            res = await back.call("connect.resume", {"connId": hello["connId"], "resumeToken": hello["resumeToken"],
                                                     "lastSeq": last_seq})
            assert res["replayed"] == 0 and res["lastSeq"] == last_seq, res
            end, _ = await back.chat("home again", sessionId=session_id)
            assert end["state"] == "final"
            seqs = [f["seq"] for f in numbered(back.frames)]
            assert seqs == list(range(last_seq + 1, last_seq + 1 + len(seqs)))

    run(body())


def test_the_session_is_busy_and_running_everywhere_and_abort_on_b_stops_the_run_on_a(
        pair: tuple[GatewayProcess, GatewayProcess], gated: OpenAIUpstream) -> None:
    gw_a, gw_b = pair

    async def body() -> None:
        a = await WsClient.connect(gw_a.url)
        hello = (await a.hello())["payload"]
        sent = await a.call("chat.send", {"text": "fault:hang_midstream stop me from elsewhere"})
        run_id, session_id = sent["runId"], sent["sessionId"]
        await a.wait(lambda: len(chat(a.frames, run_id, "delta")) == 2)  # then the upstream stalls

        async with await WsClient.connect(gw_b.url) as other:  # another tab, on B
            got = await other.call("sessions.get", {"sessionId": session_id})
            assert got["running"] == run_id
            with pytest.raises(ResError) as busy:
                await other.call("chat.send", {"sessionId": session_id, "text": "me too"})
            assert busy.value.code == "busy"

        last_seq = numbered(a.frames)[-1]["seq"]
        drop(a)
        b = await WsClient.connect(gw_b.url)
        await b.hello()
        res = await b.call("connect.resume", {"connId": hello["connId"], "resumeToken": hello["resumeToken"],
                                              "lastSeq": last_seq})
        assert res["replayed"] == 0 and res["lastSeq"] == last_seq, res
        aborted = await b.call("chat.abort", {"runId": run_id})
        assert aborted == {"runId": run_id, "aborted": True}
        ends = chat(b.frames, run_id, "aborted")
        reply_at = next(i for i, f in enumerate(b.frames) if f.get("type") == "res" and f["payload"] == aborted)
        assert len(ends) == 1 and b.frames.index(ends[0]) < reply_at  # the event, then the reply
        end = ends[0]["payload"]
        partial = "".join(d["payload"]["delta"] for d in chat(a.frames, run_id, "delta"))
        assert end["message"]["content"] == partial and end["message"]["status"] == "aborted"
        # A hung up on the upstream: the run really stopped there
        assert await asyncio.to_thread(gated.wait_for_disconnect, end["trace"]["requestId"], 10.0)
        got = await b.call("sessions.get", {"sessionId": session_id})
        assert got["running"] is None and got["messages"][-1]["status"] == "aborted"
        again, _ = await b.chat("free again", sessionId=session_id)
        assert again["state"] == "final"
        await b.close()

    run(body())


def test_a_resume_on_b_with_a_wrong_token_or_an_unknown_connection_is_not_found(
        pair: tuple[GatewayProcess, GatewayProcess]) -> None:
    gw_a, gw_b = pair

    async def body() -> None:
        async with await WsClient.connect(gw_a.url) as a:
            hello = (await a.hello())["payload"]
            for conn_id, token in ((hello["connId"], "r_wrong"), ("c_unknown", hello["resumeToken"])):
                async with await WsClient.connect(gw_b.url) as b:
                    res = await b.request("connect.resume", {"connId": conn_id, "resumeToken": token, "lastSeq": 1})
                    assert res["ok"] is False and res["error"]["code"] == "not_found", res
                    end, _ = await b.chat("fresh start")  # the socket goes on, on its own connection
                    assert end["state"] == "final"
            # A's socket is untouched by the attempts
            end, _ = await a.chat("still mine")
            assert end["state"] == "final"

    run(body())


def test_without_redis_a_gateway_keeps_its_connections_to_itself(
        start_gateway: Any, gated: OpenAIUpstream) -> None:
    """The single-process path: no Redis, a connection resumes only where it lives (the documented
    answer elsewhere is not_found) and the chat socket opens no Redis connection."""
    one, two = start_gateway(), start_gateway()

    async def body() -> None:
        a = await WsClient.connect(one.url)
        hello = (await a.hello())["payload"]
        await a.chat("before the drop")
        last = await settled(a)
        drop(a)
        async with await WsClient.connect(two.url) as b:
            res = await b.request("connect.resume", {"connId": hello["connId"], "resumeToken": hello["resumeToken"],
                                                     "lastSeq": last})
            assert res["ok"] is False and res["error"]["code"] == "not_found"
        async with await WsClient.connect(one.url) as c:
            res = await c.request("connect.resume", {"connId": hello["connId"], "resumeToken": hello["resumeToken"],
                                                     "lastSeq": last})
            assert res["ok"] is True and res["payload"]["replayed"] == 0

    run(body())
    assert "redis" not in json.dumps(one.log()).lower()


def test_with_redis_down_the_socket_works_as_one_process(start_gateway: Any) -> None:
    """Redis unreachable: chats, busy sessions and a resume on the same gateway work as without
    Redis, and the log says what is missing."""
    gw = start_gateway(env={"CLAWDBOT_REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"})

    async def body() -> None:
        a = await WsClient.connect(gw.url)
        hello = (await a.hello())["payload"]
        end, deltas = await a.chat("nobody mirrors this")
        assert end["state"] == "final" and deltas
        last = await settled(a)
        got = await a.call("sessions.get", {"sessionId": end["sessionId"]})
        assert got["running"] is None and len(got["messages"]) == 2
        drop(a)
        async with await WsClient.connect(gw.url) as b:
            res = await b.call("connect.resume", {"connId": hello["connId"], "resumeToken": hello["resumeToken"],
                                                  "lastSeq": last - 1})
            assert res["replayed"] == 1 and res["lastSeq"] == last
            end, _ = await b.chat("still here", sessionId=end["sessionId"])
            assert end["state"] == "final"

    run(body())
    gw.wait_for_log("cannot mirror chat events to Redis")
    gw.wait_for_log("cannot claim a session in Redis")
