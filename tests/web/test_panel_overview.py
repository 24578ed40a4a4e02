"""The control panel's overview of one model or one service, and its ranges longer than the
last hour read from the request log (web/panel.py, observability/timeline.py and history.py),
over real sockets: two test upstreams behind two services, requests made with the `openai`
package, the answer counted per scope; the same over the chat socket's panel.watch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.e2e.harness import GatewayProcess, openai_upstreams
from tests.upstreams.openai_server import OpenAIUpstream
from tests.web.client import ResError, WsClient, http_request, run
from tests.web.conftest import MASTER_KEY
from tests.web.test_panel_api import Session
from tests.web.test_panel_socket import cookie


def config(a: OpenAIUpstream, b: OpenAIUpstream, log: bool) -> str:
    return f"""server:
  master_key: {MASTER_KEY}
services:
  - name: a
    type: openai
    endpoint: {a.url}/v1
  - name: b
    type: openai
    endpoint: {b.url}/v1
models:
  first: [a/mock-a]
  second: [b/mock-a]
request_log: {{enabled: {str(log).lower()}, flush_interval: 0.05}}
"""


@pytest.fixture(scope="module")
def ups() -> Iterator[dict[str, OpenAIUpstream]]:
    with openai_upstreams("a", "b") as servers:
        yield servers


def start(tmp: Any, ups: dict[str, OpenAIUpstream], log: bool) -> GatewayProcess:
    (tmp / "clawdbot.yaml").write_text(config(ups["a"], ups["b"], log))
    return GatewayProcess(["serve", "--config", str(tmp / "clawdbot.yaml")], tmp / "gateway.log",
                          {"CLAWDBOT_DATA_DIR": str(tmp)}).start()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, ups: dict[str, OpenAIUpstream]) -> Iterator[GatewayProcess]:
    g = start(tmp_path_factory.mktemp("overview"), ups, log=True)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def traffic(gw: GatewayProcess) -> dict[str, int]:
    """Three requests to `first` (service a), one to `second` (service b), all logged."""
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    ids = []
    for model in ("first", "first", "second", "first"):
        r = c.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": "hi"}])
        ids.append(r.headers["x-request-id"])
    s = Session(gw, MASTER_KEY)
    for id in ids:  # in the log before any range is read (a range's answer is kept 15 s)
        wait_logged(s, id)
    return {"first": 3, "second": 1}


def wait_logged(s: Session, id: str) -> None:
    for _ in range(200):  # bounded: the log flushes every 0.05 s
        if s.get(f"/panel/api/admin/requests/{id}")[0] == 200:
            return
        status, _, _ = http_request(s.gw.url, "GET", "/healthz")  # a round trip between tries
        assert status == 200
    raise AssertionError(f"request {id} never reached the log")


def total(out: dict[str, Any]) -> int:
    return sum(out["series"]["requests"])


def test_the_last_hour_of_one_model_or_one_service(gw: GatewayProcess, traffic: dict[str, int]) -> None:
    s = Session(gw, MASTER_KEY)
    status, everything = s.get("/panel/api/overview")
    assert status == 200 and everything["scope"] is None and everything["range"] == "1h"
    assert everything["ranges"] == ["1h", "6h", "24h", "7d"] and total(everything) == 4
    status, first = s.get("/panel/api/overview?model=first")
    assert status == 200 and first["scope"] == {"model": "first", "service": None} and total(first) == 3
    assert [v for v in first["series"]["p50_ms"][-2:] if v is not None]
    assert len(first["series"]["t"]) == len(everything["series"]["t"])
    status, b = s.get("/panel/api/overview?service=b")
    assert status == 200 and b["scope"] == {"model": None, "service": "b"} and total(b) == 1
    # the cards and routes stay whole whatever the scope
    assert {x["name"] for x in b["services"]} == {"a", "b"} and {m["name"] for m in b["models"]} == {"first", "second"}
    # both: the model's traffic that service answered
    assert total(s.get("/panel/api/overview?model=first&service=a")[1]) == 3
    assert total(s.get("/panel/api/overview?model=first&service=b")[1]) == 0


@pytest.mark.parametrize(("query", "code"), [
    ("model=nope", "model_not_found"),
    ("service=nope", "service_not_found"),
    ("range=2h", "invalid_query"),
    ("scope=all", "invalid_query"),
    ("model=", "invalid_query"),
])
def test_a_bad_scope_or_range_is_a_clear_4xx(gw: GatewayProcess, query: str, code: str) -> None:
    status, out = Session(gw, MASTER_KEY).get(f"/panel/api/overview?{query}")
    assert status == (404 if code.endswith("not_found") else 400) and out["error"]["code"] == code, out


@pytest.mark.parametrize("name", ["6h", "24h", "7d"])
def test_longer_ranges_come_from_the_request_log(gw: GatewayProcess, traffic: dict[str, int], name: str) -> None:
    s = Session(gw, MASTER_KEY)
    status, out = s.get(f"/panel/api/overview?range={name}")
    assert status == 200 and out["range"] == name and total(out) == 4, out["series"]["requests"][-3:]
    seconds = {"6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400}[name]
    assert out["bucket_s"] == seconds / 360 and len(out["series"]["t"]) == 360
    assert out["series"]["t"][-1] <= out["now"] + 0.001  # the step in progress ends now
    # made a moment ago: in the step in progress, or the one before when a step began since
    assert [v for v in out["series"]["p99_ms"][-2:] if v is not None] and sum(out["series"]["errors"]) == 0
    status, first = s.get(f"/panel/api/overview?range={name}&model=first")
    assert status == 200 and total(first) == 3 and first["scope"] == {"model": "first", "service": None}
    status, b = s.get(f"/panel/api/overview?range={name}&service=b")
    assert status == 200 and total(b) == 1
    assert total(s.get(f"/panel/api/overview?range={name}&model=second&service=b")[1]) == 1
    assert total(s.get(f"/panel/api/overview?range={name}&model=second&service=a")[1]) == 0


def test_without_a_request_log_only_the_last_hour(tmp_path: Any, ups: dict[str, OpenAIUpstream]) -> None:
    g = start(tmp_path, ups, log=False)
    try:
        s = Session(g, MASTER_KEY)
        status, out = s.get("/panel/api/overview")
        assert status == 200 and out["ranges"] == ["1h"]
        status, out = s.get("/panel/api/overview?range=24h")
        assert status == 409 and out["error"]["code"] == "request_log_disabled"
        assert "request_log.enabled" in out["error"]["message"]
    finally:
        g.stop()


def test_the_socket_watches_one_scope(gw: GatewayProcess, traffic: dict[str, int]) -> None:
    async def body() -> None:
        async with await WsClient.connect(gw.url, additional_headers={"Cookie": cookie(gw, MASTER_KEY)}) as c:
            await c.hello()
            assert (await c.call("panel.watch", {"intervalMs": 1000, "model": "second"}))["watching"]
            event = await c.frame(lambda f: f.get("event") == "panel.overview")
            assert event["payload"]["scope"] == {"model": "second", "service": None}
            assert sum(event["payload"]["series"]["requests"]) == 1
            # another scope replaces the watch: the next events are of it
            await c.call("panel.watch", {"intervalMs": 1000, "service": "a"})
            event = await c.frame(lambda f: f.get("event") == "panel.overview"
                                  and f["payload"]["scope"] == {"model": None, "service": "a"})
            assert sum(event["payload"]["series"]["requests"]) == 3
            with pytest.raises(ResError, match="bad_params"):
                await c.call("panel.watch", {"model": "nope"})
            both = await c.call("panel.watch", {"intervalMs": 1000, "model": "first", "service": "b"})
            assert both["watching"]  # the model's traffic that service answered: none here
            event = await c.frame(lambda f: f.get("event") == "panel.overview"
                                  and f["payload"]["scope"] == {"model": "first", "service": "b"})
            assert sum(event["payload"]["series"]["requests"]) == 0

    run(body())


def test_the_audit_log_is_searched(gw: GatewayProcess) -> None:
    s = Session(gw, MASTER_KEY)
    made = [s.send("POST", "/panel/api/admin/keys", {"name": f"audited-{i}"})[1] for i in range(2)]
    assert s.send("POST", f"/panel/api/admin/keys/{made[1]['id']}/revoke", {})[0] == 200
    status, out = s.send("POST", "/panel/api/admin/teams", {"name": "audited-team"})
    assert status == 201, out

    def actions(query: str) -> list[tuple[str, str]]:
        status, page = s.get(f"/panel/api/admin/audit?{query}")
        assert status == 200, page
        return [(e["action"], e["target_id"]) for e in page["data"]]

    assert actions(f"target_id={made[1]['id']}") == [("key.revoke", made[1]["id"]), ("key.create", made[1]["id"])]
    assert actions("action=key.revoke") == [("key.revoke", made[1]["id"])]
    assert {a for a, _ in actions("action=key.*")} == {"key.create", "key.revoke"}
    assert {a for a, _ in actions("target_type=team")} == {"team.create"}
    assert actions("actor=someone-else") == []
    everything = s.get("/panel/api/admin/audit")[1]["data"]
    newest = everything[0]["at"]
    assert actions(f"since={newest}") == [(e["action"], e["target_id"]) for e in everything if e["at"] >= newest]
    for bad in ("action=key", "action=KEY.create", "target_type=a.b", "since=-1", "actor="):
        status, out = s.get(f"/panel/api/admin/audit?{bad}")
        assert status == 400 and out["error"]["code"] == "invalid_query", (bad, json.dumps(out))
