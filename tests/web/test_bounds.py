"""What a chat-socket client can make the gateway store or send is bounded: session changes are
rate-limited, model names and titles have a length, chats per user and messages per chat have a
ceiling, lists come in pages of a byte budget, and frames are bounded in nesting (issue 9)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.harness import GatewayProcess
from tests.web.client import ResError, WsClient, run
from tests.web.conftest import StartGateway

WEB = """
rate_limits: {per_user_per_minute: 0, per_session_per_minute: 0, session_changes_per_minute: 4}
max_sessions_per_user: 6
max_messages_per_session: 4
max_page_bytes: 2048
"""


@pytest.fixture(scope="module")
def bounded(start_gateway: StartGateway) -> GatewayProcess:
    return start_gateway(web=WEB)


async def _code(c: WsClient, method: str, params: dict[str, object]) -> str:
    res = await c.request(method, params)
    assert res["ok"] is False, res
    return str(res["error"]["code"])


def test_session_changes_are_rate_limited_and_strings_bounded(bounded: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(bounded.url) as c:
            assert await _code(c, "sessions.create", {"model": "m" * 201}) == "bad_params"
            assert await _code(c, "sessions.create", {"model": "chat\r\nx"}) == "bad_params"
            made = [await c.call("sessions.create", {"title": "t" * 5000}) for _ in range(3)]
            assert all(len(m["session"]["title"]) == 200 for m in made)  # stored at most 200 characters
            await c.call("sessions.rename", {"sessionId": made[0]["session"]["id"], "title": "renamed"})
            res = await c.request("sessions.create", {})  # the fifth change within the minute
            assert res["ok"] is False and res["error"]["code"] == "rate_limited"
            assert 0 < res["error"]["retryAfter"] <= 60
            listed = await c.call("sessions.list", {"limit": 200})
            assert len(listed["sessions"]) == 3  # the refused one was not stored

    run(body())


def test_chats_per_user_and_messages_per_chat_have_a_ceiling(bounded: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(bounded.url) as c:
            first, _ = await c.chat("one")  # chat.send without a session makes one (not a session change)
            sid = first["sessionId"]
            await c.chat("two", sessionId=sid)  # 4 messages now: the most one chat keeps here
            assert await _code(c, "chat.send", {"sessionId": sid, "text": "three"}) == "bad_params"
            for _ in range(6):  # until the user has max_sessions_per_user chats
                res = await c.request("chat.send", {"text": "more"})
                if not res["ok"]:
                    assert res["error"]["code"] == "bad_params" and "most" in res["error"]["message"]
                    break
                await c.run_end(res["payload"]["runId"])
            else:
                raise AssertionError("the sessions ceiling never applied")
            assert len((await c.call("sessions.list", {"limit": 200}))["sessions"]) == 6

    run(body())


def test_long_chats_are_paged_within_the_byte_budget(start_gateway: StartGateway) -> None:
    gw = start_gateway(web="rate_limits: {per_user_per_minute: 0, per_session_per_minute: 0}\nmax_page_bytes: 3000")

    async def body() -> None:
        async with await WsClient.connect(gw.url) as c:
            first, _ = await c.chat("q0 " + "x" * 400)
            sid = first["sessionId"]
            for i in range(1, 6):
                await c.chat(f"q{i} " + "x" * 400, sessionId=sid)
            seen: list[str] = []
            before = None
            for _ in range(12):
                params: dict[str, object] = {"sessionId": sid} | ({"before": before} if before else {})
                page = await c.call("sessions.get", params)
                assert len(json.dumps(page["messages"])) <= 3000 + 1000  # the budget, give or take one message
                assert page["messages"], page
                seen = [m["id"] for m in page["messages"]] + seen
                if not page["hasMore"]:
                    break
                before = page["messages"][0]["createdAt"]
            assert len(seen) == 12 and len(set(seen)) == 12  # every message once, over several pages

    run(body())


def test_deep_frames_are_bad_frames_and_the_socket_survives(bounded: GatewayProcess) -> None:
    deep: object = "x"
    for _ in range(100):
        deep = {"k": deep}
    frames = ["[" * 1000 + "]" * 1000, "[" * 25_000 + "]" * 25_000,
              json.dumps({"type": "req", "id": 7, "method": "status", "params": {"deep": deep}})]

    def bad_frames(c: WsClient) -> list[dict[str, object]]:
        return [f for f in c.frames if f.get("type") == "res" and not f["ok"] and f["error"]["code"] == "bad_frame"]

    async def body() -> None:
        async with await WsClient.connect(bounded.url) as c:
            await c.hello()
            for i, frame in enumerate(frames):
                await c.send_raw(frame)
                await c.wait(lambda n=i + 1: len(bad_frames(c)) == n)  # type: ignore[misc]
            assert all("nested deeper than 64" in str(f["error"]) for f in bad_frames(c))
            assert (await c.call("status"))["user"] == "local"  # still open and answering

    run(body())


def test_bad_params_never_reach_the_store(bounded: GatewayProcess) -> None:
    async def body() -> None:
        async with await WsClient.connect(bounded.url) as c:
            with pytest.raises(ResError) as err:
                await c.call("sessions.get", {"sessionId": "s_none", "before": "yesterday"})
            assert err.value.code == "bad_params"

    run(body())
