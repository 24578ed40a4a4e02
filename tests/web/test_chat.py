"""chat.send / chat.abort over a real socket: streaming, storing, history, regenerate, busy, abort
reaching the upstream, errors, and the business log line."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.harness import GatewayProcess
from tests.upstreams.openai_server import OpenAIUpstream
from tests.web.client import ResError, WsClient, run


def test_chat_streams_deltas_then_one_final_and_is_stored(gw: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            sent = await c.call("chat.send", {"text": "alpha beta gamma delta"})
            assert sent["runId"].startswith("run_") and sent["sessionId"] and sent["userMessageId"]
            res_index = next(i for i, f in enumerate(c.frames) if f.get("type") == "res")
            end = (await c.run_end(sent["runId"]))["payload"]
            events = c.events(sent["runId"])
            assert all(c.frames.index(e) > res_index for e in events)  # the reply came first
            deltas = [e["payload"]["delta"] for e in events if e["payload"]["state"] == "delta"]
            assert len(deltas) >= 4 and "".join(deltas) == "echo: alpha beta gamma delta"
            assert [e["payload"]["state"] for e in events].count("final") == 1 and events[-1]["payload"] is end
            msg = end["message"]
            assert msg["role"] == "assistant" and msg["status"] == "complete"
            assert msg["content"] == "".join(deltas) and msg["model"] == "chat" and msg["id"]
            assert end["usage"]["promptTokens"] > 0 and end["usage"]["completionTokens"] > 0
            t = end["trace"]
            assert len(str(uuid.UUID(t["requestId"]))) == 36 and t["service"] == "oa" and t["upstreamModel"] == "mock-a"
            assert t["totalMs"] >= t["ttftMs"] > 0 and t["completionTokens"] == end["usage"]["completionTokens"]
            assert t["attempts"] and t["attempts"][-1]["service"] == "oa" and t["attempts"][-1]["ok"] is True

            got = await c.call("sessions.get", {"sessionId": sent["sessionId"]})
            assert got["session"]["title"] == "alpha beta gamma delta" and got["session"]["model"] == "chat"
            assert got["session"]["messageCount"] == 2
            user, answer = got["messages"]
            assert user["role"] == "user" and user["content"] == "alpha beta gamma delta"
            assert user["id"] == sent["userMessageId"]
            assert answer["id"] == msg["id"] and answer["status"] == "complete" and answer["content"] == msg["content"]
            assert answer["usage"] == end["usage"] and answer["trace"]["requestId"] == t["requestId"]

    run(body())


def test_the_request_goes_upstream_with_the_run_request_id(gw: GatewayProcess, upstream: OpenAIUpstream) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            end, _ = await c.chat("which id do you see")
            rid = end["trace"]["requestId"]
            rec = next(r for r in upstream.requests if r.request_id == rid)
            assert rec.body["stream"] is True and rec.body["model"] == "mock-a"
            # a new chat: its one message is the whole history, and it keeps the default model
            assert [(m["role"], m["content"]) for m in rec.body["messages"]] == [("user", "which id do you see")]
            got = (await c.call("sessions.get", {"sessionId": end["sessionId"]}))["session"]
            assert got["model"] == "chat" and got["messageCount"] == 2

    run(body())


def test_history_is_sent_and_session_model_is_kept(gw: GatewayProcess, upstream: OpenAIUpstream) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            first, _ = await c.chat("my name is Ada", model="oa/mock-b")
            sid = first["sessionId"]
            assert (await c.call("sessions.get", {"sessionId": sid}))["session"]["model"] == "oa/mock-b"
            second, _ = await c.chat("what is my name", sessionId=sid)  # no model: the session's
            rec = next(r for r in upstream.requests if r.request_id == second["trace"]["requestId"])
            assert rec.body["model"] == "mock-b"
            assert [(m["role"], m["content"]) for m in rec.body["messages"]] == [
                ("user", "my name is Ada"), ("assistant", "echo: my name is Ada"), ("user", "what is my name")]
            third, _ = await c.chat("switch", sessionId=sid, model="chat")
            assert third["message"]["model"] == "chat"
            assert (await c.call("sessions.get", {"sessionId": sid}))["session"]["model"] == "chat"

    run(body())


def test_regenerate_answers_the_last_question_again(gw: GatewayProcess, upstream: OpenAIUpstream) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            first, _ = await c.chat("say it twice")
            sid = first["sessionId"]
            before = await c.call("sessions.get", {"sessionId": sid})
            sent = await c.call("chat.send", {"sessionId": sid, "regenerate": True, "text": "ignored"})
            assert sent["userMessageId"] == before["messages"][0]["id"]
            end = (await c.run_end(sent["runId"]))["payload"]
            assert end["state"] == "final" and end["message"]["content"] == "echo: say it twice"
            rec = next(r for r in upstream.requests if r.request_id == end["trace"]["requestId"])
            assert [m["role"] for m in rec.body["messages"]] == ["user"]  # the old answer is gone
            after = await c.call("sessions.get", {"sessionId": sid})
            assert [m["role"] for m in after["messages"]] == ["user", "assistant"]
            assert after["messages"][1]["id"] == end["message"]["id"] != first["message"]["id"]
            empty = (await c.call("sessions.create"))["session"]
            with pytest.raises(ResError) as info:
                await c.call("chat.send", {"sessionId": empty["id"], "regenerate": True})
            assert info.value.code == "bad_params"

    run(body())


def test_one_run_per_session_busy(gw: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            sent = await c.call("chat.send", {"text": "fault:hang_midstream slow one"})
            res = await c.request("chat.send", {"sessionId": sent["sessionId"], "text": "me too"})
            assert res["ok"] is False and res["error"]["code"] == "busy"
            # another session is not busy
            other, _ = await c.chat("independent")
            assert other["state"] == "final"
            assert (await c.call("chat.abort", {"runId": sent["runId"]}))["aborted"] is True
            again, _ = await c.chat("now it is free", sessionId=sent["sessionId"])
            assert again["state"] == "final"

    run(body())


def test_abort_cancels_the_upstream_call_and_keeps_the_partial_answer(
        gw: GatewayProcess, upstream: OpenAIUpstream) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            sent = await c.call("chat.send", {"text": "fault:hang_midstream part of it"})
            run_id = sent["runId"]
            await c.wait(lambda: len([e for e in c.events(run_id) if e["payload"]["state"] == "delta"]) >= 2)
            assert upstream.in_flight >= 1
            res = await c.call("chat.abort", {"runId": run_id})
            assert res == {"runId": run_id, "aborted": True}
            end = (await c.run_end(run_id))["payload"]
            assert end["state"] == "aborted"
            partial = "".join(e["payload"]["delta"] for e in c.events(run_id) if e["payload"]["state"] == "delta")
            assert end["message"]["content"] == partial and end["message"]["status"] == "aborted" and partial
            assert upstream.wait_for_disconnect(end["trace"]["requestId"], timeout=10)
            assert (await c.call("chat.abort", {"runId": run_id}))["aborted"] is False  # already over
            stored = (await c.call("sessions.get", {"sessionId": sent["sessionId"]}))["messages"]
            assert stored[-1]["status"] == "aborted" and stored[-1]["content"] == partial
            assert (await c.call("chat.abort", {"runId": "run_nope"}))["aborted"] is False

    run(body())


def test_upstream_error_ends_the_run_with_error_and_is_stored(gw: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            end, deltas = await c.chat("fault:400 please")
            assert end["state"] == "error" and not deltas
            assert end["error"]["code"] in ("upstream_error", "bad_params") and end["error"]["message"]
            assert end["trace"]["requestId"] and end["trace"]["error"] == end["error"]
            assert end["message"]["status"] == "error"
            mid, deltas = await c.chat("fault:midstream broken")
            assert mid["state"] == "error" and mid["error"]["code"] == "upstream_error"
            assert mid["message"]["content"] == "".join(d["delta"] for d in deltas) and deltas
            sid = mid["sessionId"]
            follow, _ = await c.chat("and now", sessionId=sid)
            stored = (await c.call("sessions.get", {"sessionId": sid}))["messages"]
            assert [m["status"] for m in stored] == ["complete", "error", "complete", "complete"]
            assert follow["state"] == "final"

    run(body())


def test_unknown_session_and_unknown_model(gw: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            res = await c.request("chat.send", {"sessionId": "s_missing", "text": "hi"})
            assert res["error"]["code"] == "not_found"
            end, _ = await c.chat("hi", model="no-such-model")
            assert end["state"] == "error" and end["error"]["code"] == "not_found"

    run(body())


def test_business_log_line_per_turn_carries_the_request_id(gw: GatewayProcess) -> None:
    secret = "zebra-content-never-logged"

    async def body() -> dict[str, str]:
        async with await WsClient.connect(gw.url) as c:
            end, _ = await c.chat(f"tell nobody {secret}")
            return {"rid": end["trace"]["requestId"], "run": end["runId"], "session": end["sessionId"]}

    ids = run(body())
    log = gw.wait_for_log(f"run={ids['run']}")
    line = next(x for x in log.splitlines() if f"run={ids['run']}" in x)
    assert "clawdbot.chat" in line and f"request_id={ids['rid']}" in line
    for field in ("user=local", f"session={ids['session']}", "model=chat", "service=oa", "upstream_model=mock-a",
                  "prompt_tokens=", "completion_tokens=", "latency_ms=", "outcome=complete"):
        assert field in line, field
    assert secret not in log


def test_untitled_session_is_named_by_its_first_message_and_session_events_follow_runs(gw: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            s = (await c.call("sessions.create"))["session"]
            assert s["title"] == ""
            end, _ = await c.chat("  What is   the tallest mountain on Earth, and how was it measured first?  ",
                                  sessionId=s["id"])
            def updates() -> list[dict[str, Any]]:
                return [f["payload"]["session"] for f in c.frames
                        if f.get("event") == "session" and f["payload"]["session"]["id"] == s["id"]]

            await c.wait(lambda: len(updates()) == 2)  # the second follows the final event
            start, after = updates()
            assert start["title"] == after["title"] and start["title"].startswith("What is the tallest mountain")
            assert len(start["title"]) == 60 and start["title"].endswith("…")
            assert start["model"] == "chat" and after["messageCount"] == 2
            order = [f.get("event") for f in c.frames if f.get("type") == "event"]
            assert order.index("session") < order.index("chat")  # the session first, then its answer
            await c.chat("a second message keeps the title", sessionId=s["id"])
            got = await c.call("sessions.get", {"sessionId": s["id"]})
            assert got["session"]["title"] == start["title"] and got["running"] is None
            assert end["state"] == "final"

    run(body())


def test_next_message_right_after_the_final_is_not_busy(gw: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            end, _ = await c.chat("first")
            for i in range(5):
                end, _ = await c.chat(f"again {i}", sessionId=end["sessionId"])
                assert end["state"] == "final"

    run(body())
