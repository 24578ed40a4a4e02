"""The control panel's server side (web/panel.py) over plain HTTP: who gets which role, the CSRF
token and Origin check on writes, the admin API under the session, audit under the session's user,
and the overview's live numbers. The page itself in Chromium: tests/browser/test_panel.py."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.e2e.harness import GatewayProcess
from tests.web.client import http_request
from tests.web.conftest import MASTER_KEY, StartGateway


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
