"""The socket's frames and every non-chat method, over a real socket to a real gateway process."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.harness import GatewayProcess
from tests.web.client import ResError, WsClient, run


def test_hello_comes_first_with_seq_1(gw: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            hello = await c.hello()
            assert c.frames[0] is hello and hello["seq"] == 1 and hello["type"] == "event"
            p = hello["payload"]
            assert p["connId"].startswith("c_") and p["resumeToken"].startswith("r_")
            assert p["user"] == "local" and p["server"] == {"version": "0.1.0", "role": "serve"}

    run(body())


def test_sessions_create_list_get_rename_delete(gw: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            a = (await c.call("sessions.create", {"title": "first"}))["session"]
            b = (await c.call("sessions.create", {"title": "  second\n one ", "model": "oa/mock-b"}))["session"]
            assert a["title"] == "first" and a["messageCount"] == 0 and a["model"] is None
            assert b["title"] == "second one" and b["model"] == "oa/mock-b"
            assert isinstance(a["createdAt"], int) and a["createdAt"] > 1_600_000_000_000
            listed = (await c.call("sessions.list"))["sessions"]
            ids = [s["id"] for s in listed]
            assert ids.index(b["id"]) < ids.index(a["id"])  # most recent first
            one = await c.call("sessions.list", {"limit": 1})
            assert [s["id"] for s in one["sessions"]] == [ids[0]]
            got = await c.call("sessions.get", {"sessionId": a["id"]})
            assert got["session"]["id"] == a["id"] and got["messages"] == []
            renamed = (await c.call("sessions.rename", {"sessionId": a["id"], "title": "renamed"}))["session"]
            assert renamed["title"] == "renamed"
            listed = (await c.call("sessions.list"))["sessions"]
            assert listed[0]["id"] == a["id"]  # renaming counts as an update
            assert await c.call("sessions.delete", {"sessionId": a["id"]}) == {"deleted": True}
            for method, params in [("sessions.get", {"sessionId": a["id"]}),
                                   ("sessions.delete", {"sessionId": a["id"]}),
                                   ("sessions.rename", {"sessionId": a["id"], "title": "x"})]:
                with pytest.raises(ResError) as info:
                    await c.call(method, params)
                assert info.value.code == "not_found"

    run(body())


def test_bad_params_name_the_field(gw: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            cases: list[tuple[str, dict[str, Any], str]] = [
                ("sessions.rename", {"sessionId": "s_x", "title": 5}, "title"),
                ("sessions.get", {}, "sessionId"),
                ("sessions.list", {"limit": 0}, "limit"),
                ("sessions.create", {"title": "   "}, "title"),
                ("chat.send", {"text": 5}, "text"),
                ("chat.send", {"text": " "}, "text"),
                ("chat.send", {"regenerate": True}, "sessionId"),
                ("chat.abort", {}, "runId"),
                ("connect.resume", {"connId": "c_x"}, "resumeToken"),
            ]
            for method, params, field in cases:
                res = await c.request(method, params)
                assert res["ok"] is False and res["error"]["code"] == "bad_params", (method, res)
                assert field in res["error"]["message"], (method, res)

    run(body())


def test_models_list_and_status(gw: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            models = await c.call("models.list")
            ids = [m["id"] for m in models["models"]]
            assert {"chat", "oa", "oa/mock-a", "mock-b"} <= set(ids)
            assert models["default"] == "chat"
            assert all(m["ownedBy"] for m in models["models"])
            st = await c.call("status")
            assert st["version"] == "0.1.0" and st["role"] == "serve" and st["user"] == "local"
            assert st["uptimeS"] >= 0 and st["model"] == "chat"
            assert st["services"]["oa"]["reachable"] is True
            s = (await c.call("sessions.create", {"model": "oa/mock-b"}))["session"]
            assert (await c.call("status", {"sessionId": s["id"]}))["model"] == "oa/mock-b"

    run(body())


def test_debug_reports_this_process(gw: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            await c.chat("warm the numbers up")
            procs = (await c.call("debug"))["processes"]
            assert len(procs) == 1
            p = procs[0]
            assert p["role"] == "serve" and p["url"] == gw.url
            assert p["load"]["wsConnections"] >= 1 and p["load"]["chatsInFlight"] == 0
            assert {"httpInFlight", "loopLagP50Ms", "loopLagMaxMs"} <= set(p["load"])
            assert p["overheadP50Ms"] is not None and p["overheadP95Ms"] is not None
            oa = p["services"]["oa"]
            assert oa["type"] == "openai" and oa["reachable"] is True and oa["requests"] >= 1
            assert oa["latencyP50Ms"] is not None and oa["errors"] >= 0 and "errorRate1m" in oa

    run(body())


@pytest.mark.parametrize(("raw", "rid"), [
    ("not json", None), ("[1, 2]", None), ("42", None), ("\u00e9\u00e8 broken {", None),
    ('{"type": "req", "method": "status"}', None),  # no id
    ('{"type": "req", "id": true, "method": "x"}', None),  # not an id anyone meant
    ('{"id": 7, "method": "status"}', 7),  # no type
    ('{"type": "req", "id": 7}', 7),  # no method
    ('{"type": "req", "id": "s", "method": "status", "params": []}', "s"),
])
def test_malformed_frames_get_bad_frame_and_the_socket_stays(gw: GatewayProcess, raw: str, rid: object) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            await c.hello()
            await c.send_raw(raw)
            res = await c.frame(lambda f: f.get("type") == "res")
            assert res["ok"] is False and res["error"]["code"] == "bad_frame" and res["id"] == rid
            assert (await c.call("status"))["user"] == "local"  # still answering

    run(body())


def test_binary_frames_are_read_as_json_text(gw: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            await c.send_raw(json.dumps({"type": "req", "id": "b1", "method": "status"}).encode())
            res = await c.frame(lambda f: f.get("id") == "b1")
            assert res["ok"] is True

    run(body())


def test_unknown_method(gw: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            res = await c.request("sessions.explode", {})
            assert res["ok"] is False and res["error"]["code"] == "unknown_method"
            assert "sessions.explode" in res["error"]["message"]
            assert (await c.call("sessions.list"))["sessions"] is not None

    run(body())


def test_string_ids_are_echoed(gw: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            await c.send_raw(json.dumps({"type": "req", "id": "abc-1", "method": "models.list"}))
            res = await c.frame(lambda f: f.get("id") == "abc-1")
            assert res["ok"] is True and res["type"] == "res"

    run(body())


def test_frame_at_the_limit_is_answered_and_one_over_closes_1009(gw: GatewayProcess) -> None:
    limit = 65536  # web.max_frame_bytes in this gateway's config

    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            head = '{"type":"req","id":1,"method":"sessions.create","params":{"title":"'
            tail = '"}}'
            fits = head + "t" * (limit - len(head) - len(tail)) + tail
            assert len(fits.encode()) == limit
            await c.send_raw(fits)
            res = await c.frame(lambda f: f.get("id") == 1)
            assert res["ok"] is True
            # multi-byte characters: the limit is in bytes, not characters
            over = head + "\u00e9" * ((limit - len(head) - len(tail)) // 2 + 1) + tail
            await c.send_raw(over)
            await c.wait(lambda: c.closed is not None)
            assert isinstance(c.closed, ConnectionClosed)
            assert c.closed.rcvd is not None and c.closed.rcvd.code == 1009

    run(body())


def test_seq_numbers_have_no_gaps(gw: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            await c.chat("one two three")
            await c.call("status")
            await c.chat("four five")
            assert c.seqs() == list(range(1, len(c.seqs()) + 1))

    run(body())
