"""Who may open the socket: the master key (login cookie or Bearer), and the Origin check."""

from __future__ import annotations

import json
import time

import pytest
from websockets.exceptions import InvalidStatus

from clawdbot.web.auth import ADMIN, TTL_S, Authenticator
from tests.e2e.harness import GatewayProcess
from tests.web.client import WsClient, http_request, run
from tests.web.conftest import MASTER_KEY, UNLIMITED, StartGateway

OTHER_ORIGIN = "https://chat.example.com"


@pytest.fixture(scope="module")
def locked(start_gateway: StartGateway) -> GatewayProcess:
    return start_gateway(server=f"master_key: {MASTER_KEY}",
                         web=UNLIMITED + f'\nallowed_origins: ["{OTHER_ORIGIN}/"]')


def refused(url: str, **kw: object) -> int:
    async def body() -> int:
        with pytest.raises(InvalidStatus) as info:
            await WsClient.connect(url, **kw)
        return info.value.response.status_code

    status: int = run(body())
    return status


def opens(url: str, **kw: object) -> str:
    async def body() -> str:
        async with await WsClient.connect(url, **kw) as c:
            user: str = (await c.hello())["payload"]["user"]
            await c.call("sessions.list")
            return user

    user: str = run(body())
    return user


def login(gw: GatewayProcess, key: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return http_request(gw.url, "POST", "/auth/login", {"key": key}, headers)


def cookie_of(headers: dict[str, str]) -> str:
    return headers["set-cookie"].split(";")[0]


def test_socket_without_credentials_is_401(locked: GatewayProcess) -> None:
    async def body() -> None:
        with pytest.raises(InvalidStatus) as info:
            await WsClient.connect(locked.url)
        assert info.value.response.status_code == 401
        assert json.loads(info.value.response.body or b"{}")["error"]["code"] == "unauthorized"

    run(body())
    assert refused(locked.url, additional_headers={"Authorization": "Bearer sk-wrong"}) == 401
    assert refused(locked.url, additional_headers={"Cookie": "clawdbot_session=v1.1.2.3"}) == 401


def test_wrong_key_is_refused_and_sets_no_cookie(locked: GatewayProcess) -> None:
    status, headers, body = login(locked, "sk-not-the-key")
    assert status == 401 and "set-cookie" not in headers
    assert json.loads(body)["error"]["code"] == "invalid_api_key"
    status, _, _ = http_request(locked.url, "POST", "/auth/login", b"{nope", {"Content-Type": "application/json"})
    assert status == 400


def test_login_sets_a_cookie_that_opens_the_socket(locked: GatewayProcess) -> None:
    status, _, body = http_request(locked.url, "GET", "/auth/status")
    assert status == 200 and json.loads(body) == {"required": True, "authenticated": False}
    status, headers, body = login(locked, MASTER_KEY)
    assert status == 200 and json.loads(body)["authenticated"] is True
    attrs = [a.strip() for a in headers["set-cookie"].split(";")]
    assert attrs[0].startswith("clawdbot_session=") and len(attrs[0]) > 40
    assert {"HttpOnly", "SameSite=Strict", "Path=/", f"Max-Age={TTL_S}"} <= set(attrs)
    assert "Secure" not in attrs  # plain http here
    assert MASTER_KEY not in headers["set-cookie"]
    cookie = cookie_of(headers)
    assert opens(locked.url, additional_headers={"Cookie": f"theme=dark; {cookie}"}) == "admin"
    status, _, body = http_request(locked.url, "GET", "/auth/status", headers={"Cookie": cookie})
    session = json.loads(body)
    csrf = session.pop("csrf")  # the control panel's write token, tied to this cookie (web/panel.py)
    assert session == {"required": True, "authenticated": True, "user": "admin", "role": "admin"}
    assert len(csrf) >= 40 and csrf not in cookie
    # a tampered signature is worthless
    name, value = cookie.split("=", 1)
    forged = f"{name}={value[:-2]}{'A' if value[-2] != 'A' else 'B'}{value[-1]}"
    assert refused(locked.url, additional_headers={"Cookie": forged}) == 401


def test_cookie_is_signed_with_a_key_derived_from_the_master_key(locked: GatewayProcess) -> None:
    """Any process with the same master key accepts it (restarts, replicas); an expired one fails."""
    auth = Authenticator(MASTER_KEY)
    fresh = auth.issue(ADMIN)
    assert opens(locked.url, additional_headers={"Cookie": f"clawdbot_session={fresh}"}) == "admin"
    old = auth.issue(ADMIN, now=time.time() - TTL_S - 5)
    assert refused(locked.url, additional_headers={"Cookie": f"clawdbot_session={old}"}) == 401
    other = Authenticator("sk-some-other-key").issue(ADMIN)
    assert refused(locked.url, additional_headers={"Cookie": f"clawdbot_session={other}"}) == 401


def test_bearer_master_key_opens_the_socket(locked: GatewayProcess) -> None:
    assert opens(locked.url, additional_headers={"Authorization": f"Bearer {MASTER_KEY}"}) == "admin"


def test_logout_clears_the_cookie(locked: GatewayProcess) -> None:
    status, headers, _ = http_request(locked.url, "POST", "/auth/logout")
    assert status == 200
    attrs = [a.strip() for a in headers["set-cookie"].split(";")]
    assert attrs[0] == "clawdbot_session=" and "Max-Age=0" in attrs


def test_origin_must_be_our_own_or_configured(locked: GatewayProcess) -> None:
    bearer = {"Authorization": f"Bearer {MASTER_KEY}"}
    assert refused(locked.url, origin="http://evil.example", additional_headers=bearer) == 403
    assert refused(locked.url, origin=f"{OTHER_ORIGIN}.evil.example", additional_headers=bearer) == 403
    assert refused(locked.url, origin="null", additional_headers=bearer) == 403
    assert opens(locked.url, origin=locked.url, additional_headers=bearer) == "admin"
    assert opens(locked.url, origin=OTHER_ORIGIN, additional_headers=bearer) == "admin"
    # the origin is checked before the credentials: a foreign page learns nothing about them
    assert refused(locked.url, origin="http://evil.example") == 403


def test_foreign_origin_cannot_log_in(locked: GatewayProcess) -> None:
    status, headers, _ = login(locked, MASTER_KEY, {"Origin": "http://evil.example"})
    assert status == 403 and "set-cookie" not in headers
    status, _, _ = login(locked, MASTER_KEY, {"Origin": locked.url})
    assert status == 200


def test_no_master_key_means_no_login_and_local_user(gw: GatewayProcess) -> None:
    _, _, body = http_request(gw.url, "GET", "/auth/status")
    session = json.loads(body)
    assert session.pop("csrf")  # a per-process token: the panel's writes still need it
    assert session == {"required": False, "authenticated": True, "user": "local", "role": "admin"}
    assert opens(gw.url) == "local"
    assert opens(gw.url, origin=gw.url) == "local"
    assert refused(gw.url, origin="http://evil.example") == 403


def test_debug_stats_needs_the_master_key(locked: GatewayProcess) -> None:
    status, _, _ = http_request(locked.url, "GET", "/debug/stats")
    assert status == 401
    status, _, body = http_request(locked.url, "GET", "/debug/stats", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    entry = json.loads(body)
    assert status == 200 and entry["role"] == "serve" and "oa" in entry["services"] and "load" in entry


def test_repeated_failed_logins_are_throttled(start_gateway: StartGateway) -> None:
    gw = start_gateway(server=f"master_key: {MASTER_KEY}")
    statuses = [login(gw, f"sk-guess-{i}")[0] for i in range(12)]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    status, headers, _ = login(gw, MASTER_KEY)
    assert status == 429 and int(headers["retry-after"]) > 0
