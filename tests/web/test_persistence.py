"""Sessions, messages and login cookies survive a gateway restart (SQLite in a data dir); a run
still answering at shutdown is stored as aborted with its partial text."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import GatewayProcess
from tests.upstreams.openai_server import OpenAIUpstream
from tests.web.client import WsClient, http_request, run
from tests.web.conftest import MASTER_KEY, UNLIMITED, StartGateway


def start(start_gateway: StartGateway, data_dir: Path) -> GatewayProcess:
    return start_gateway(server=f"master_key: {MASTER_KEY}", web=UNLIMITED, data_dir=data_dir)


def test_sessions_survive_a_restart(start_gateway: StartGateway, tmp_path: Path, upstream: OpenAIUpstream) -> None:
    first = start(start_gateway, tmp_path)
    status, headers, _ = http_request(first.url, "POST", "/auth/login", {"key": MASTER_KEY})
    assert status == 200
    cookie = {"Cookie": headers["set-cookie"].split(";")[0]}

    async def before() -> dict[str, object]:
        async with await WsClient.connect(first.url, additional_headers=cookie) as c:
            done, _ = await c.chat("remember the lighthouse")
            sent = await c.call("chat.send", {"text": "fault:hang_midstream interrupted by shutdown"})
            await c.wait(lambda: len([e for e in c.events(sent["runId"]) if e["payload"]["state"] == "delta"]) >= 2)
            renamed = (await c.call("sessions.create", {"title": "kept empty"}))["session"]
            return {"done": done, "hanging": sent["sessionId"], "empty": renamed["id"]}

    ids = run(before())
    first.stop()  # SIGTERM while a run is still answering
    assert (tmp_path / "clawdbot.db").is_file()

    second = start(start_gateway, tmp_path)

    async def after() -> None:
        async with await WsClient.connect(second.url, additional_headers=cookie) as c:  # the old cookie
            listed = {s["id"]: s for s in (await c.call("sessions.list"))["sessions"]}
            done = ids["done"]
            assert isinstance(done, dict)
            assert {done["sessionId"], ids["hanging"], ids["empty"]} <= set(listed)
            assert listed[ids["empty"]]["title"] == "kept empty" and listed[ids["empty"]]["messageCount"] == 0
            got = await c.call("sessions.get", {"sessionId": done["sessionId"]})
            user, answer = got["messages"]
            assert user["content"] == "remember the lighthouse"
            assert answer["content"] == "echo: remember the lighthouse" and answer["status"] == "complete"
            assert answer["usage"] == done["usage"] and answer["trace"]["requestId"] == done["trace"]["requestId"]
            cut = (await c.call("sessions.get", {"sessionId": ids["hanging"]}))["messages"]
            assert [m["role"] for m in cut] == ["user", "assistant"]
            assert cut[1]["status"] == "aborted" and cut[1]["content"].startswith("echo:")
            # the conversation goes on with its history
            more, _ = await c.chat("and then?", sessionId=done["sessionId"])
            rec = next(r for r in upstream.requests if r.request_id == more["trace"]["requestId"])
            assert [m["content"] for m in rec.body["messages"]] == [
                "remember the lighthouse", "echo: remember the lighthouse", "and then?"]

    run(after())
