"""The chat page through the same pipeline as /v1: a user logs in with a virtual key, and that
user's chats are limited (the key's rate limit and allowed models), metered and charged to the key
(spend report), logged in the access log, and stop the moment the key is revoked."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.e2e.harness import GatewayProcess
from tests.web.client import WsClient, http_request, run
from tests.web.conftest import MASTER_KEY, UNLIMITED, StartGateway


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway) -> GatewayProcess:
    return start_gateway(server=f"master_key: {MASTER_KEY}\nlog_format: json", web=UNLIMITED)


def admin(gw: GatewayProcess, method: str, path: str, body: Any = None) -> Any:
    status, _, out = http_request(gw.url, method, path, body, {"Authorization": f"Bearer {MASTER_KEY}"})
    assert status in (200, 201), out
    return json.loads(out)


def login(gw: GatewayProcess, key: str) -> tuple[int, Any, str]:
    status, headers, body = http_request(gw.url, "POST", "/auth/login", {"key": key})
    return status, json.loads(body), headers.get("set-cookie", "").split(";")[0]


def test_a_virtual_key_logs_in_and_its_chats_are_metered(gw: GatewayProcess) -> None:
    key = admin(gw, "POST", "/admin/api/keys", {"rpm": 2, "allowed_models": ["chat"]})
    status, body, cookie = login(gw, key["key"])
    assert status == 200 and body["user"] == f"key:{key['id']}"
    assert key["key"] not in cookie  # the cookie carries the key's hash, never the key

    async def chat() -> list[Any]:
        async with await WsClient.connect(gw.url, additional_headers={"Cookie": cookie}) as c:
            assert (await c.hello())["payload"]["user"] == f"key:{key['id']}"
            first, _ = await c.chat("hello")
            second, _ = await c.chat("again", sessionId=first["sessionId"])
            third, _ = await c.chat("once more", sessionId=first["sessionId"])  # over the key's rpm: 2
            sessions = await c.call("sessions.list")
            return [first, second, third, sessions]

    first, second, third, sessions = run(chat())
    assert first["state"] == "final" and first["message"]["content"] == "echo: hello"
    assert second["state"] == "final"
    assert third["state"] == "error" and third["error"]["code"] == "rate_limited"
    assert "RPM" in third["error"]["message"]
    assert len(sessions["sessions"]) == 1  # the key's own chats
    # charged to the key, as on /v1
    deadline = time.monotonic() + 10
    while True:
        report = admin(gw, "GET", f"/admin/api/spend?key_id={key['id']}")
        if report["total"]["requests"] >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # the spend writer flushes every 0.25 s: polling for it, bounded
    assert report["total"]["requests"] == 2 and report["total"]["completion_tokens"] > 0
    # one access line per chat turn, as for /v1
    line = gw.wait_for_log('"path":"chat.send","status":429')
    assert '"method":"WS"' in line


def test_a_revoked_key_stops_chatting_at_once(gw: GatewayProcess) -> None:
    key = admin(gw, "POST", "/admin/api/keys", {})
    status, _, cookie = login(gw, key["key"])
    assert status == 200
    admin(gw, "POST", f"/admin/api/keys/{key['id']}/revoke")

    async def chat() -> Any:
        async with await WsClient.connect(gw.url, additional_headers={"Cookie": cookie}) as c:
            await c.hello()
            return await c.request("chat.send", {"text": "still there?"})

    deadline = time.monotonic() + 5
    while True:  # the key cache holds a key for up to 1 s (docs/tenancy.md)
        res = run(chat())
        if not res["ok"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert res["ok"] is False and res["error"]["code"] == "unauthorized"
    assert "revoked" in res["error"]["message"]


def test_a_key_may_not_chat_with_a_model_it_may_not_use(gw: GatewayProcess) -> None:
    key = admin(gw, "POST", "/admin/api/keys", {"allowed_models": ["something-else"]})
    _, _, cookie = login(gw, key["key"])

    async def chat() -> Any:
        async with await WsClient.connect(gw.url, additional_headers={"Cookie": cookie}) as c:
            await c.hello()
            end, _ = await c.chat("hi", model="chat")
            return end

    end = run(chat())
    assert end["state"] == "error" and end["error"]["code"] == "forbidden"


def test_a_wrong_key_still_fails_login(gw: GatewayProcess) -> None:
    status, _, cookie = login(gw, "sk-cb-not-a-real-key-0000000000000000")
    assert status == 401 and not cookie
