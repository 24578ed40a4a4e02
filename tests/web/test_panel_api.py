"""The control panel's server side (web/panel.py) over plain HTTP: who gets which role, the CSRF
token and Origin check on writes, the admin API under the session, audit under the session's user,
the overview's live numbers, the plugins' summary of the last hour and the request stream under the
session. The page itself in Chromium: tests/browser/test_panel.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.e2e.harness import GatewayProcess
from tests.upstreams.openai_server import OpenAIUpstream
from tests.web.client import http_request
from tests.web.conftest import MASTER_KEY, StartGateway, config_text


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway) -> GatewayProcess:
    return start_gateway(server=f"master_key: {MASTER_KEY}")


class Session:
    """A browser-like session: the login cookie, the CSRF token, same-origin requests."""

    def __init__(self, gw: GatewayProcess, key: str) -> None:
        self.gw = gw
        status, headers, body = http_request(gw.url, "POST", "/auth/login", {"key": key})
        assert status == 200, body
        self.cookie = headers["set-cookie"].split(";")[0]
        self.status = self.get("/auth/status")[1]

    def get(self, path: str) -> tuple[int, Any]:
        status, _, body = http_request(self.gw.url, "GET", path, headers={"Cookie": self.cookie})
        return status, json.loads(body)

    def send(self, method: str, path: str, body: Any = None, csrf: bool = True,
             origin: str | None = None) -> tuple[int, Any]:
        headers = {"Cookie": self.cookie, "Origin": origin or self.gw.url}
        if csrf:
            headers["X-Clawdbot-CSRF"] = self.status["csrf"]
        status, _, out = http_request(self.gw.url, method, path, body, headers)
        return status, json.loads(out)


def admin_key(gw: GatewayProcess, **fields: Any) -> dict[str, Any]:
    status, _, body = http_request(gw.url, "POST", "/admin/api/keys", fields,
                                   {"Authorization": f"Bearer {MASTER_KEY}"})
    assert status == 201, body
    return dict(json.loads(body))


def test_the_panel_api_needs_a_login(gw: GatewayProcess) -> None:
    status, _, body = http_request(gw.url, "GET", "/panel/api/overview")
    assert status == 401 and json.loads(body)["error"]["code"] == "login_required"


def test_the_master_key_is_admin_and_writes_need_the_csrf_token(gw: GatewayProcess) -> None:
    s = Session(gw, MASTER_KEY)
    assert s.status["role"] == "admin" and s.status["csrf"]
    status, out = s.send("POST", "/panel/api/admin/keys", {"name": "no-token"}, csrf=False)
    assert status == 403 and out["error"]["code"] == "csrf_failed"
    status, out = s.send("POST", "/panel/api/admin/keys", {"name": "elsewhere"}, origin="https://evil.example")
    assert status == 403 and out["error"]["code"] == "forbidden_origin"
    status, out = s.send("POST", "/panel/api/admin/keys", {"name": "from-the-panel"})
    assert status == 201 and out["key"].startswith("sk-")
    status, listed = s.get("/panel/api/admin/keys")
    assert status == 200 and "from-the-panel" in json.dumps(listed) and out["key"] not in json.dumps(listed)
    status, audit = s.get("/panel/api/admin/audit")
    assert status == 200 and any(e.get("actor") == "master" and "from-the-panel" in json.dumps(e)
                                 for e in audit["data"])


def test_another_sessions_token_does_not_pass(gw: GatewayProcess) -> None:
    a = Session(gw, MASTER_KEY)
    b = Session(gw, admin_key(gw, name="other-admin", metadata={"role": "admin"})["key"])
    assert a.status["csrf"] != b.status["csrf"]
    a.status["csrf"] = b.status["csrf"]
    status, out = a.send("POST", "/panel/api/admin/keys", {"name": "crossed"})
    assert status == 403 and out["error"]["code"] == "csrf_failed"


def test_a_viewer_reads_and_changes_nothing(gw: GatewayProcess) -> None:
    viewer = admin_key(gw, name="viewer", metadata={"panel_role": "viewer"})
    s = Session(gw, viewer["key"])
    assert s.status["role"] == "viewer"
    assert s.get("/panel/api/admin/keys")[0] == 200
    assert s.get("/panel/api/overview")[0] == 200
    status, out = s.send("POST", "/panel/api/admin/keys", {"name": "by-a-viewer"})
    assert status == 403 and out["error"]["code"] == "panel_read_only"


def test_a_plain_key_has_no_panel(gw: GatewayProcess) -> None:
    plain = admin_key(gw, name="plain")
    s = Session(gw, plain["key"])
    assert s.status["role"] is None
    status, out = s.get("/panel/api/admin/keys")
    assert status == 403 and out["error"]["code"] == "panel_forbidden"


def test_an_admin_key_is_admin(gw: GatewayProcess) -> None:
    key = admin_key(gw, name="ops", metadata={"role": "admin"})
    assert Session(gw, key["key"]).status["role"] == "admin"


def test_the_overview_counts_requests_as_they_happen(gw: GatewayProcess) -> None:
    s = Session(gw, MASTER_KEY)
    before = sum(s.get("/panel/api/overview")[1]["series"]["requests"])
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    for _ in range(3):
        c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    status, out = s.get("/panel/api/overview")
    assert status == 200 and out["bucket_s"] == 10
    assert sum(out["series"]["requests"]) >= before + 3
    assert len({len(v) for v in out["series"].values()}) == 1  # every series has one entry per bucket
    assert out["series"]["p50_ms"][-1] is not None
    [svc] = out["services"]
    assert svc["name"] == "oa" and svc["breaker"] == "closed"
    [model] = out["models"]
    assert model["name"] == "chat" and model["deployments"][0]["service"] == "oa"
    assert model["deployments"][0]["requests"] >= 3


PLUGINS = """
plugins:
  - name: pii
    with: {mode: mask}
request_log: {enabled: true, flush_interval: 0.05}
"""


@pytest.fixture(scope="module")
def plugin_gw(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    """A gateway with pii and the request log: the Plugins tab's summary and the Requests tab's stream."""
    d = tmp_path_factory.mktemp("panel-plugins-api")
    cfg = d / "clawdbot.yaml"
    cfg.write_text(config_text(upstream.url, server=f"master_key: {MASTER_KEY}") + PLUGINS)
    gw = GatewayProcess(["serve", "--config", str(cfg)], d / "gateway.log", {"CLAWDBOT_DATA_DIR": str(d)}).start()
    try:
        yield gw
    finally:
        gw.stop()


def test_the_plugin_catalogue_sums_up_what_each_plugin_did(plugin_gw: GatewayProcess) -> None:
    s = Session(plugin_gw, MASTER_KEY)
    status, out = s.get("/panel/api/plugins")
    assert status == 200 and out["actions"] == {} and out["actions_window_s"] >= 0
    # the settings' descriptions are in the schema the page builds its forms from
    [pii] = [p for p in out["installed"] if p["name"] == "pii"]
    props = pii["schema"]["$defs"]["PiiSettings"]["properties"]
    assert props["mode"]["description"].startswith("mask:") and "description" in props["types"]
    c = openai.OpenAI(base_url=plugin_gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    for _ in range(2):
        c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "mail li@example.net"}])
    status, out = s.get("/panel/api/plugins")
    assert status == 200 and out["actions"] == {"pii": {"masked": 2}}
    # the same counter /metrics exports
    _, _, metrics = http_request(plugin_gw.url, "GET", "/metrics", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    line = [x for x in metrics.decode().splitlines() if x.startswith("clawdbot_plugin_actions_total{")]
    assert line == ['clawdbot_plugin_actions_total{action="masked",plugin="pii"} 2.0'], line


def test_the_request_stream_under_the_session(plugin_gw: GatewayProcess) -> None:
    """GET /panel/api/admin/requests/stream (the Requests tab's Live): the admin API's stream with
    the session cookie, filtered; bad filters are 400, never a 500."""
    s = Session(plugin_gw, MASTER_KEY)
    for query in ("status=abc", "min_latency_ms=-5", "errors=maybe", "timeout_s=0", "model=" + "m" * 300):
        status, out = s.get("/panel/api/admin/requests/stream?" + query)
        assert status == 400, (query, out)
    got: list[tuple[int, dict[str, str], bytes]] = []
    reader = threading.Thread(target=lambda: got.append(http_request(
        plugin_gw.url, "GET", "/panel/api/admin/requests/stream?model=chat&timeout_s=2",
        headers={"Cookie": s.cookie})))
    reader.start()
    c = openai.OpenAI(base_url=plugin_gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    for _ in range(200):  # until the stream (2 s) ends: some requests end while it follows
        if not reader.is_alive():
            break
        c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "streamed"}])
    reader.join(10)
    [(status, headers, body)] = got
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    records = [json.loads(line[6:]) for line in body.decode().splitlines() if line.startswith("data: {")]
    assert records and all(r["model"] == "chat" for r in records if "id" in r)
    assert b"event: end" in body
