"""A gateway with everything that could hold a secret turned on (master key, key secret, upstream
keys on three services, virtual keys with secret-looking metadata, the request log with bodies,
per-key metrics, traces with content, the pii plugin, the chat page), driven through the paths where
keys are most tempting to write down: refusals of wrong, revoked and misplaced keys, upstreams that
refuse the gateway's key (one of them quoting the whole key back), the admin API, the chat page's
login and socket. Everything it produced is then searched for every secret it used: nothing.

The session-end scan (tests/secrets/plugin.py) covers every other gateway of the suite; this test
collects on its own so that it fails by itself, and says which of its own sources leaked."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anthropic
import openai
import pytest
from aiohttp import web

from tests.e2e.harness import GatewayProcess
from tests.secrets.collect import Collector, activated
from tests.secrets.scan import Checker, report
from tests.secrets.taps import installed
from tests.upstreams.anthropic_server import AnthropicUpstream
from tests.upstreams.openai_server import OpenAIUpstream
from tests.upstreams.otlp_receiver import OtlpReceiver
from tests.upstreams.runner import ServerThread
from tests.web.client import WsClient, run

MASTER = "sk-noleak-master-6f1d2c3b4a59687766"
KEY_SECRET = "noleak-hmac-secret-8c7b6a5f4e3d2c1b"
UPSTREAM_KEY = "sk-noleak-upstream-0a1b2c3d4e5f6a7b"
WRONG_UPSTREAM_KEY = "sk-noleak-stale-upstream-9f8e7d6c5b4a"
ECHOED_KEY = "sk-noleak-echoed-upstream-1234abcd5678"
ANTHROPIC_KEY = "sk-ant-noleak-3e4f5a6b7c8d9e0f1a2b"
META_SECRET = "noleak-metadata-password-77a1b2c3"


class QuotingUpstream(ServerThread):
    """An OpenAI-compatible server that refuses every request quoting the whole key it was sent, as
    some proxies in front of model servers do."""

    def __init__(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._refuse)
        super().__init__(app, name="quoting-upstream")

    async def _refuse(self, request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "")
        return web.json_response({"error": {"message": f"Key rejected: {given} (header was '{given}')",
                                            "type": "invalid_request_error", "code": "invalid_api_key"}}, status=401)


def config(up: OpenAIUpstream, quoting: QuotingUpstream, ant: AnthropicUpstream, rx: OtlpReceiver) -> str:
    return f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
  log_format: json
request_log: {{enabled: true, flush_interval: 0.05}}
metrics: {{key_labels: true}}
telemetry: {{enabled: true, endpoint: {rx.url}, capture_content: true}}
services:
  - name: oa
    type: openai
    endpoint: {up.base_url}
    auth: {{type: bearer, key: "${{TEST_UPSTREAM_KEY}}"}}
  - name: stale
    type: openai
    endpoint: {up.base_url}
    auth: {{type: bearer, key: {WRONG_UPSTREAM_KEY}}}
    breaker: {{enabled: false}}
  - name: quoting
    type: openai
    endpoint: {quoting.url}/v1
    auth: {{type: bearer, key: {ECHOED_KEY}}}
    breaker: {{enabled: false}}
  - name: anth
    type: anthropic
    endpoint: {ant.url}
    auth: {{key: {ANTHROPIC_KEY}}}
    breaker: {{enabled: false}}
models:
  chat: {{targets: [oa/mock-a], log_bodies: true}}
  stale: [stale/mock-a]
  quoted: {{targets: [quoting/mock-q], log_bodies: true}}
  claude: [anth/claude-test]
plugins:
  - name: pii
    models: [chat]  # the others go the fast path: the upstream's bytes as they are, when the dialects match
web:
  rate_limits: {{per_user_per_minute: 0, per_session_per_minute: 0}}
"""


def call(gw: GatewayProcess, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=20)
    try:
        data = json.dumps(body) if body is not None else None
        conn.request(method, path, data, {"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        raw = r.read()
        try:
            parsed: Any = json.loads(raw)
        except ValueError:
            parsed = raw.decode("utf-8", "replace")
        return r.status, parsed, {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


def admin(gw: GatewayProcess, method: str, path: str, body: Any = None) -> Any:
    status, out, _ = call(gw, method, path, body, {"Authorization": f"Bearer {MASTER}"})
    assert status in (200, 201), (status, out)
    return out


@pytest.fixture()
def collected(tmp_path: Path) -> Iterator[Collector]:
    with installed(), activated(Collector(tmp_path / "collected")) as c:
        yield c


def exercise(gw: GatewayProcess, rx: OtlpReceiver) -> None:
    made = admin(gw, "POST", "/admin/api/keys", {"name": "tempting", "metadata": {"api_key": META_SECRET,
                                                                                   "note": "plain"}})
    key, key_id = made["key"], made["id"]
    admin(gw, "PATCH", f"/admin/api/keys/{key_id}", {"metadata": {"password": META_SECRET, "note": "changed"}})
    doomed = admin(gw, "POST", "/admin/api/keys", {"name": "doomed"})
    admin(gw, "POST", f"/admin/api/keys/{doomed['id']}/revoke")

    oai = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=20)
    msg = [{"role": "user", "content": "write to bob@example.com"}]
    assert oai.chat.completions.create(model="chat", messages=msg).choices  # type: ignore[arg-type]
    assert list(oai.chat.completions.create(model="chat", messages=msg, stream=True))  # type: ignore[arg-type]
    ant = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=20)
    assert ant.messages.create(model="claude", max_tokens=20, messages=[{"role": "user", "content": "hi"}]).content
    status, _, _ = call(gw, "POST", "/api/chat", {"model": "chat", "stream": False, "messages": msg},
                        {"Authorization": f"Bearer {key}"})
    assert status == 200

    # refusals: an unknown key, a near miss of the master key, a revoked key, a key in the wrong places
    for wrong in ("sk-cb-" + "Q" * 20 + "unknownkey0123456789abcd", MASTER + "x", doomed["key"]):
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=gw.url + "/v1", api_key=wrong, max_retries=0).models.list()
    with pytest.raises(openai.APIStatusError):
        openai.OpenAI(base_url=gw.url + "/v1", api_key=doomed["key"], max_retries=0).chat.completions.create(
            model="chat", messages=msg)  # type: ignore[arg-type]
    for path in (f"/v1/chat/completions?api_key={key}", f"/v1/chat/completions?key={MASTER}"):
        status, _, _ = call(gw, "POST", path, {"model": "chat", "messages": msg})
        assert status == 401
    status, _, _ = call(gw, "POST", "/v1/chat/completions", {"model": "chat", "messages": msg, "api_key": key},
                        {"Authorization": f"Bearer {key}"})
    assert status in (200, 400)
    status, _, _ = call(gw, "POST", "/v1/chat/completions", {"model": "chat", "messages": msg},
                        {"Authorization": key})  # no scheme
    assert status == 401
    status, _, _ = call(gw, "POST", "/v1/chat/completions", {"model": "chat", "messages": msg},
                        {"Authorization": f"Basic {key}"})
    assert status == 401

    # upstreams that refuse the gateway's key: one masks it, one quotes it whole
    for model in ("stale", "quoted"):
        with pytest.raises(openai.APIStatusError):
            oai.chat.completions.create(model=model, messages=msg)  # type: ignore[arg-type]
        with pytest.raises(openai.APIStatusError):
            list(oai.chat.completions.create(model=model, messages=msg, stream=True))  # type: ignore[arg-type]

    # the chat page: a login with the key, a chat over the socket, a wrong login
    status, body, headers = call(gw, "POST", "/auth/login", {"key": key})
    assert status == 200, body
    cookie = headers["set-cookie"].split(";")[0]
    assert call(gw, "POST", "/auth/login", {"key": MASTER + "y"})[0] == 401

    async def chat() -> str:
        async with await WsClient.connect(gw.url, additional_headers={"Cookie": cookie}) as c:
            await c.hello()
            end, _ = await c.chat("hello from the page", model="chat")
            quoted, _ = await c.chat("and now the quoting one", model="quoted")
            return f"{end['state']} {quoted['state']}"

    assert run(chat()) == "final error"

    # what an operator reads: the admin API, the request log with bodies, audit, spend, health
    requests = admin(gw, "GET", "/admin/api/requests?limit=100")["data"]
    assert requests
    for r in requests[:20]:
        admin(gw, "GET", f"/admin/api/requests/{quote(r['id'], safe='')}")
    admin(gw, "GET", "/admin/api/audit?limit=100")
    admin(gw, "GET", f"/admin/api/keys/{key_id}")
    admin(gw, "GET", "/admin/api/keys")
    admin(gw, "GET", "/admin/api/spend?group_by=key")
    call(gw, "GET", "/readyz", headers={"Authorization": f"Bearer {MASTER}"})
    call(gw, "GET", "/v1/models", headers={"Authorization": f"Bearer {key}"})
    rx.wait_for(lambda spans: sum(s.name.startswith("chat ") and s.kind == "SERVER" for s in spans) >= 8)


def test_nothing_a_tempted_gateway_writes_holds_a_secret(tmp_path: Path, collected: Collector) -> None:
    with OpenAIUpstream(api_key=UPSTREAM_KEY) as up, QuotingUpstream() as quoting, \
            AnthropicUpstream(api_key=ANTHROPIC_KEY) as ant, OtlpReceiver() as rx:
        cfg = tmp_path / "clawdbot.yaml"
        cfg.write_text(config(up, quoting, ant, rx))
        env = {"TEST_MASTER_KEY": MASTER, "TEST_UPSTREAM_KEY": UPSTREAM_KEY, "CLAWDBOT_KEY_SECRET": KEY_SECRET,
               "OTEL_BSP_SCHEDULE_DELAY": "50"}
        with GatewayProcess(["serve", "--config", str(cfg)], tmp_path / "gateway.log", env) as gw:
            exercise(gw, rx)

    used = {s.value for s in collected.secrets.values()}
    assert {MASTER, KEY_SECRET, UPSTREAM_KEY, WRONG_UPSTREAM_KEY, ECHOED_KEY, ANTHROPIC_KEY} <= used
    assert sum(s.kind == "virtual key" for s in collected.secrets.values()) >= 2
    sources = list(collected.sources())
    for kind in ("log of gateway", "HTTP response to POST /v1/chat/completions", "HTTP response to POST /v1/messages",
                 "HTTP response to GET /admin/api/requests/", "HTTP response to GET /admin/api/audit",
                 "WebSocket frame", "GET /metrics of gateway", "SQLite ", "spans received by the OTLP receiver"):
        assert any(s.name.startswith(kind) for s in sources), f"nothing collected from: {kind}"
    assert any("request_log" in s.text for s in sources if s.name.startswith("SQLite "))
    assert any("clawdbot_key_requests_total" in s.text for s in sources if s.name.startswith("GET /metrics"))
    leaks = list(Checker(collected.secrets.values()).scan_all(sources))
    assert not leaks, report(leaks)
    # metadata under a secret-looking name is the admin's own data (the key record shows it to admins),
    # but the audit log, which outlives every key, keeps `***` in its place (docs/tenancy.md)
    audit = [s.text for s in sources if s.name.startswith("HTTP response to GET /admin/api/audit")]
    audit += [line for s in sources if s.name.startswith("SQLite ") for line in s.text.splitlines()
              if line.startswith("audit_log: ")]
    assert audit and not any(META_SECRET in text for text in audit)
    assert any(META_SECRET in s.text for s in sources if s.name.startswith("HTTP response to GET /admin/api/keys/"))
