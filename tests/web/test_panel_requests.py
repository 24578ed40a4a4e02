"""The control panel's Replay and Open in chat (web/panel_requests.py, web/replay.py) over real
sockets against a real gateway process: a replay of a logged request goes through the pipeline as
the signed-in admin (its key pays, not the original one), is logged as a replay and audited; a
streamed request is replayed whole; a request without its body is refused (409); viewers, a missing
CSRF token and a foreign Origin are refused; one replay at a time and a rate limit; Open in chat
makes a session of the admin's that the chat socket's sessions.get returns, and that takes a
follow-up message. The page itself: tests/browser/test_panel_replay.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import openai
import pytest

from tests.e2e.harness import GatewayProcess, until
from tests.upstreams.openai_server import OpenAIUpstream
from tests.web.client import WsClient, http_request, run
from tests.web.conftest import MASTER_KEY
from tests.web.test_panel_api import Session, admin_key

DEADLINE_S = 10.0
MAX_MESSAGES = 6
MAX_SESSIONS = 2


def config(upstream: OpenAIUpstream, own: OpenAIUpstream) -> str:
    return f"""server:
  master_key: {MASTER_KEY}
  log_format: text
request_log: {{enabled: true, flush_interval: 0.05}}
services:
  - name: oa
    type: openai
    endpoint: {upstream.url}/v1
  - name: own  # its own upstream: the busy test holds it, then stops it
    type: openai
    endpoint: {own.url}/v1
models:
  chat-bodies: {{targets: [oa/mock-a], log_bodies: true}}
  chat-plain: [oa/mock-b]
  chat-own: {{targets: [own/mock-a], log_bodies: true}}
costs:
  chat-bodies: {{input: 1.0, output: 2.0}}
web:
  default_model: chat-bodies
  max_messages_per_session: {MAX_MESSAGES}
  max_sessions_per_user: {MAX_SESSIONS}
  rate_limits: {{per_user_per_minute: 0, per_session_per_minute: 0}}
"""


@pytest.fixture(scope="module")
def own() -> Iterator[OpenAIUpstream]:
    with OpenAIUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream,
       own: OpenAIUpstream) -> Iterator[GatewayProcess]:
    d = tmp_path_factory.mktemp("panel-requests")
    cfg = d / "clawdbot.yaml"
    cfg.write_text(config(upstream, own))
    g = GatewayProcess(["serve", "--config", str(cfg)], d / "gateway.log", {"CLAWDBOT_DATA_DIR": str(d)}).start()
    yield g
    g.stop()


def admin_get(gw: GatewayProcess, path: str) -> tuple[int, Any]:
    status, _, body = http_request(gw.url, "GET", path, headers={"Authorization": f"Bearer {MASTER_KEY}"})
    return status, json.loads(body)


def record(gw: GatewayProcess, rid: str) -> dict[str, Any]:
    def get() -> dict[str, Any] | None:
        status, out = admin_get(gw, f"/admin/api/requests/{quote(rid, safe='')}")
        return out if status == 200 else None

    found = until(get)
    assert found, f"request {rid} was never logged"
    return dict(found)


def ask(gw: GatewayProcess, key: str, messages: list[dict[str, Any]], model: str = "chat-bodies",
        **kw: Any) -> str:
    """Send a chat request with the `openai` package; its request id, once it is in the log."""
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=20)
    raw = c.chat.completions.with_raw_response.create(model=model, messages=messages, **kw)
    if kw.get("stream"):
        for _ in raw.parse():
            pass
    rid = raw.headers["x-request-id"]
    record(gw, rid)
    return rid


def say(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def replay(s: Session, rid: str, **kw: Any) -> tuple[int, Any]:
    return s.send("POST", f"/panel/api/requests/{quote(rid, safe='')}/replay", {}, **kw)


def open_in_chat(s: Session, rid: str, **kw: Any) -> tuple[int, Any]:
    return s.send("POST", f"/panel/api/requests/{quote(rid, safe='')}/chat", {}, **kw)


def spend_requests(gw: GatewayProcess, key_id: str) -> int:
    status, out = admin_get(gw, "/admin/api/spend?group_by=key")
    assert status == 200, out
    return sum(int(r["requests"]) for r in out["data"] if r["group"] == key_id)


def audit(gw: GatewayProcess, action: str) -> list[dict[str, Any]]:
    status, out = admin_get(gw, "/admin/api/audit?limit=200")
    assert status == 200, out
    return [e for e in out["data"] if e["action"] == action]


def test_a_replay_runs_as_the_admin_is_logged_as_a_replay_and_audited(gw: GatewayProcess) -> None:
    user = admin_key(gw, name="alice", budget_usd=5)
    rid = ask(gw, user["key"], say("what is a gateway"))
    assert until(lambda: spend_requests(gw, user["id"]) == 1)
    ops = admin_key(gw, name="ops", metadata={"role": "admin"})

    status, out = replay(Session(gw, ops["key"]), rid)
    assert status == 200, out
    assert out["replay_of"] == rid and out["request_id"] != rid and out["status"] == 200
    assert out["answer"] == "echo: what is a gateway" and out["error"] is None
    assert out["model"] == "chat-bodies" and out["service"] == "oa" and out["upstream_model"] == "mock-a"
    assert out["key_id"] == ops["id"] and out["principal"] == ops["id"] and out["streamed"] is False
    assert out["prompt_tokens"] > 0 and out["completion_tokens"] > 0 and out["cost_usd"] > 0
    assert out["latency_ms"] > 0 and out["audited"] is True

    again = record(gw, out["request_id"])
    assert again["replay_of"] == rid and again["key_id"] == ops["id"] and again["status"] == 200
    assert again["path"] == "/v1/chat/completions" and again["answer"] == "echo: what is a gateway"
    assert record(gw, rid)["replay_of"] is None
    status, page = admin_get(gw, f"/admin/api/requests?key_id={ops['id']}")
    assert status == 200 and [r["replay_of"] for r in page["data"]] == [rid]

    # billed to the admin's key; the original key's spend is as it was
    assert until(lambda: spend_requests(gw, ops["id"]) == 1)
    assert spend_requests(gw, user["id"]) == 1
    [entry] = [e for e in audit(gw, "request.replay") if e["after"]["request_id"] == rid]
    assert entry["actor"] == ops["id"] and entry["target_type"] == "request"
    assert entry["after"]["replay_id"] == out["request_id"] and entry["after"]["key_id"] == ops["id"]


def test_the_master_key_replays_as_master_and_a_stream_is_replayed_whole(gw: GatewayProcess) -> None:
    rid = ask(gw, MASTER_KEY, say("stream me"), stream=True, stream_options={"include_usage": True})
    assert record(gw, rid)["stream"] is True
    status, out = replay(Session(gw, MASTER_KEY), rid)
    assert status == 200, out
    assert out["streamed"] is True and out["answer"] == "echo: stream me"
    assert out["principal"] == "master" and out["key_id"] is None
    again = record(gw, out["request_id"])
    assert again["stream"] is False and again["principal"] == "master" and again["replay_of"] == rid


def test_a_replay_that_fails_answers_the_error_beside_the_original(gw: GatewayProcess) -> None:
    rid = ask(gw, MASTER_KEY, say("fine now"))
    picky = admin_key(gw, name="picky-admin", metadata={"role": "admin"}, allowed_models=["chat-plain"])
    status, out = replay(Session(gw, picky["key"]), rid)
    assert status == 200, out  # the replay ran: its own refusal is its answer
    assert out["status"] == 403 and out["answer"] is None and out["error"]["code"] == "model_not_allowed"
    assert record(gw, out["request_id"])["replay_of"] == rid


def test_a_request_without_its_body_is_refused(gw: GatewayProcess) -> None:
    rid = ask(gw, MASTER_KEY, say("not kept"), model="chat-plain")
    assert record(gw, rid)["has_bodies"] is False
    s = Session(gw, MASTER_KEY)
    for act in (replay, open_in_chat):
        status, out = act(s, rid)
        assert status == 409 and out["error"]["code"] == "no_request_body", out
        assert "log_bodies" in out["error"]["message"]


def test_who_may_act_and_how(gw: GatewayProcess) -> None:
    rid = ask(gw, MASTER_KEY, say("guarded"))
    viewer = Session(gw, admin_key(gw, name="watcher", metadata={"panel_role": "viewer"})["key"])
    plain = Session(gw, admin_key(gw, name="nobody")["key"])
    master = Session(gw, MASTER_KEY)
    for act in (replay, open_in_chat):
        assert act(viewer, rid)[1]["error"]["code"] == "panel_read_only"
        assert act(viewer, rid)[0] == 403
        assert act(plain, rid)[1]["error"]["code"] == "panel_forbidden"
        status, out = act(master, rid, csrf=False)
        assert status == 403 and out["error"]["code"] == "csrf_failed"
        status, out = act(master, rid, origin="https://evil.example")
        assert status == 403 and out["error"]["code"] == "forbidden_origin"
    status, _, body = http_request(gw.url, "POST", f"/panel/api/requests/{rid}/replay", {})
    assert status == 401 and b"login_required" in body
    assert not [e for e in audit(gw, "request.chat") + audit(gw, "request.replay") if e["after"]["request_id"] == rid]


def test_bad_requests_are_4xx(gw: GatewayProcess) -> None:
    s = Session(gw, MASTER_KEY)
    rid = ask(gw, MASTER_KEY, say("shape"))
    status, out = replay(s, "no-such-request")
    assert status == 404 and out["error"]["code"] == "request_not_found"
    status, out = s.send("POST", "/panel/api/requests/bad!id/replay", {})
    assert status == 400 and out["error"]["param"] == "id"
    status, out = s.send("POST", f"/panel/api/requests/{rid}/replay", {"model": "other"})
    assert status == 400 and "model" in out["error"]["message"]
    status, out = s.send("POST", f"/panel/api/requests/{rid}/replay", b"[1, 2")
    assert status == 400
    status, out = s.send("POST", f"/panel/api/requests/{rid}/replay", b"{" + b" " * 2048 + b"}")
    assert status == 413
    status, out = s.send("POST", f"/panel/api/requests/{rid}/delete", {})
    assert status == 404
    status, out = s.get(f"/panel/api/requests/{rid}/replay")
    assert status == 405


def test_one_replay_at_a_time_and_a_rate_limit(gw: GatewayProcess, own: OpenAIUpstream) -> None:
    ops = Session(gw, admin_key(gw, name="busy-admin", metadata={"role": "admin"})["key"])
    quick = ask(gw, MASTER_KEY, say("quick"))
    for _ in range(10):
        assert replay(ops, quick)[0] == 200
    status, out = replay(ops, quick)
    assert status == 429 and out["error"]["code"] == "replay_rate_limited"

    held = ask(gw, MASTER_KEY, say("hold on"), model="chat-own")
    seen = own.request_count
    own.delay_ms = 600_000  # the next answer never comes: the upstream is stopped below
    s = Session(gw, MASTER_KEY)
    first: list[tuple[int, Any]] = []
    t = threading.Thread(target=lambda: first.append(replay(s, held)))
    t.start()
    try:
        assert own.wait_for(lambda: own.request_count > seen, timeout=DEADLINE_S)
        status, out = replay(s, quick)
        assert status == 429 and out["error"]["code"] == "replay_busy"
    finally:
        own.stop()  # the held replay's upstream call fails at once
        t.join(DEADLINE_S)
    [(status, out)] = first
    assert status == 200 and out["status"] >= 500 and out["error"] is not None
    assert replay(s, quick)[0] == 200  # free again


def test_open_in_chat_makes_a_session_the_socket_returns(gw: GatewayProcess) -> None:
    messages = [{"role": "system", "content": "You are terse."},
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": "first answer"},
                {"role": "user", "content": [{"type": "text", "text": "second question"}]}]
    rid = ask(gw, MASTER_KEY, messages)
    s = Session(gw, MASTER_KEY)
    status, out = open_in_chat(s, rid)
    assert status == 200, out
    sid = out["session_id"]
    assert out["url"] == f"/#{sid}" and out["title"] == f"From request {rid}" and out["model"] == "chat-bodies"
    assert out["messages"] == 4 and out["left_out"] == 1 and out["answer"] is True and out["audited"] is True
    [entry] = [e for e in audit(gw, "request.chat") if e["after"]["request_id"] == rid]
    assert entry["actor"] == "master" and entry["after"]["session_id"] == sid and entry["after"]["user"] == "admin"

    async def body() -> None:
        async with await WsClient.connect(gw.url, additional_headers={"Cookie": s.cookie}) as c:
            await c.hello()
            got = await c.call("sessions.get", {"sessionId": sid})
            assert got["session"]["title"] == f"From request {rid}" and got["session"]["model"] == "chat-bodies"
            assert [(m["role"], m["content"]) for m in got["messages"]] == [
                ("user", "first question"), ("assistant", "first answer"), ("user", "second question"),
                ("assistant", "echo: second question")]
            end, _ = await c.chat("and a follow-up", sessionId=sid)
            assert end["state"] == "final" and end["message"]["content"] == "echo: and a follow-up"

    run(body())


def test_open_in_chat_keeps_the_chat_bounds(gw: GatewayProcess) -> None:
    s = Session(gw, admin_key(gw, name="chatty-admin", metadata={"role": "admin"})["key"])
    long = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(MAX_MESSAGES + 1)]
    status, out = open_in_chat(s, ask(gw, MASTER_KEY, long))
    assert status == 409 and out["error"]["code"] == "chat_too_long"
    rid = ask(gw, MASTER_KEY, say("again and again"))
    for _ in range(MAX_SESSIONS):
        assert open_in_chat(s, rid)[0] == 200
    status, out = open_in_chat(s, rid)
    assert status == 409 and out["error"]["code"] == "too_many_chats"
