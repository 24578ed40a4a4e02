"""Browser origins on the HTTP routes (api/origins.py): a page elsewhere cannot make the user's
browser run requests on a gateway it reaches (a text/plain POST needs no preflight, and the Ollama
routes read JSON whatever the Content-Type says); allowed origins get CORS headers and preflights.
Real gateway process, plain HTTP with the headers a browser sends (tests/browser/test_cross_origin.py
does it with Chromium)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import GatewayProcess, serve_config
from tests.upstreams.openai_server import OpenAIUpstream

CHAT = {"model": "chat-oa", "max_tokens": 4, "messages": [{"role": "user", "content": "hello"}]}
JSON = "application/json"
OLLAMA_CHAT = {"model": "chat-oa", "stream": False, "messages": [{"role": "user", "content": "hello"}]}


def config(url: str) -> str:
    return f"""
server:
  cors_origins: ["https://app.example.com", "https://*.corp.example", "chrome-extension://*"]
services:
  - name: oa
    type: openai
    endpoint: {url}/v1
models:
  chat-oa: [oa/mock-a]
"""


@pytest.fixture(scope="module")
def upstream(openai_upstream: OpenAIUpstream) -> OpenAIUpstream:
    return openai_upstream  # the session's (tests/e2e/conftest.py): counted before and after, not from zero


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    with serve_config(tmp_path_factory.mktemp("origins"), config(upstream.url), "") as gw:
        yield gw


def call(gw: GatewayProcess, method: str, path: str, body: object = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=20)
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None, headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def chats(up: OpenAIUpstream) -> int:
    return sum(r.path == "/v1/chat/completions" for r in up.requests)


@pytest.mark.parametrize(("path", "body", "ctype"), [
    ("/api/chat", OLLAMA_CHAT, "text/plain;charset=UTF-8"),  # what a page's fetch() sends with no preflight
    ("/api/generate", {"model": "chat-oa", "prompt": "hi", "stream": False}, "application/x-www-form-urlencoded"),
    ("/v1/chat/completions", CHAT, "application/json"),
])
def test_a_foreign_page_cannot_make_the_browser_use_the_gateway(
        gw: GatewayProcess, upstream: OpenAIUpstream, path: str, body: object, ctype: str) -> None:
    before = chats(upstream)
    status, headers, data = call(gw, "POST", path, body, {"Origin": "https://evil.example", "Content-Type": ctype})
    assert status == 403, data
    assert b"forbidden_origin" in data or path.startswith("/api/")  # (Ollama's errors are {"error": text})
    assert "https://evil.example" in data.decode() and "server.cors_origins" in data.decode()
    assert "access-control-allow-origin" not in headers
    assert chats(upstream) == before  # refused before it cost anything
    gw.wait_for_log(f"path={path} status=403")  # logged like any refusal


@pytest.mark.parametrize("origin", ["null", "https://corp.example.evil", "https://app.example.com.evil",
                                    "http://app.example.com", "https://evil.example/", "moz-extension://abc"])
def test_origins_not_listed_are_refused(gw: GatewayProcess, origin: str) -> None:
    status, _, _ = call(gw, "POST", "/v1/chat/completions", CHAT, {"Origin": origin, "Content-Type": JSON})
    assert status == 403


@pytest.mark.parametrize("origin", ["https://app.example.com", "https://team.corp.example", "chrome-extension://abcdef",
                                    "http://localhost:5173", "http://127.0.0.1:3000", "https://[::1]:8443"])
def test_an_allowed_origin_reads_the_answer_with_cors_headers(gw: GatewayProcess, origin: str) -> None:
    status, headers, data = call(gw, "POST", "/v1/chat/completions", CHAT,
                                 {"Origin": origin, "Content-Type": "application/json"})
    assert status == 200, data
    assert json.loads(data)["choices"][0]["message"]["content"]
    assert headers["access-control-allow-origin"] == origin and headers["vary"] == "Origin"
    assert headers["access-control-expose-headers"] == "*"  # x-request-id, retry-after, x-ratelimit-*


def test_errors_carry_the_cors_headers_too(gw: GatewayProcess) -> None:
    status, headers, data = call(gw, "POST", "/v1/chat/completions", {**CHAT, "model": "no-such-model"},
                                 {"Origin": "https://app.example.com", "Content-Type": "application/json"})
    assert status == 404 and json.loads(data)["error"]["code"] == "model_not_found"
    assert headers["access-control-allow-origin"] == "https://app.example.com"  # so the page can read why


def test_the_gateways_own_pages_need_no_cors(gw: GatewayProcess) -> None:
    own = f"http://127.0.0.1:{gw.port}"  # the Host header http.client sends
    status, headers, _ = call(gw, "POST", "/v1/chat/completions", CHAT, {"Origin": own, "Content-Type": JSON})
    assert status == 200 and "access-control-allow-origin" not in headers
    status, headers, _ = call(gw, "POST", "/v1/chat/completions", CHAT, {"Content-Type": "application/json"})
    assert status == 200 and "access-control-allow-origin" not in headers  # no Origin: not a browser


def test_preflights_are_answered_for_allowed_origins_only(gw: GatewayProcess, upstream: OpenAIUpstream) -> None:
    asked = "authorization, content-type, x-stainless-os, x-stainless-retry-count"  # the openai JS SDK's
    before = chats(upstream)
    status, headers, data = call(gw, "OPTIONS", "/v1/chat/completions", None, {
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": asked})
    assert (status, data) == (204, b"")
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    assert headers["access-control-allow-methods"] == "POST"
    assert headers["access-control-allow-headers"] == asked and headers["access-control-max-age"] == "600"
    status, headers, _ = call(gw, "OPTIONS", "/admin/api/keys", None, {
        "Origin": "http://localhost:8080", "Access-Control-Request-Method": "PATCH"})
    assert status == 204 and "PATCH" in headers["access-control-allow-methods"].split(", ")
    for odd in ("x-" + "a" * 3000, "x-a;b=c", 'x-"quoted"'):  # too long, or not header names: none allowed
        status, headers, _ = call(gw, "OPTIONS", "/v1/chat/completions", None, {
            "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": odd})
        assert status == 204 and "access-control-allow-headers" not in headers
    status, _, _ = call(gw, "OPTIONS", "/v1/chat/completions", None, {
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert status == 403
    status, _, _ = call(gw, "OPTIONS", "/v1/nowhere", None, {
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"})
    assert status == 404
    status, headers, _ = call(gw, "OPTIONS", "/v1/chat/completions")  # not a preflight: the route's answer
    assert status == 405 and headers["allow"] == "POST"
    assert chats(upstream) == before


def test_any_origin_needs_a_master_key_and_entries_must_be_origins(tmp_path: Path) -> None:
    cfg = tmp_path / "any.yaml"
    cfg.write_text('server:\n  cors_origins: ["*"]\nservices:\n  - {name: m, type: mock}\n')
    code, out = GatewayProcess(["serve", "--config", str(cfg)], tmp_path / "any.log").run_to_exit()
    assert code == 2 and 'cors_origins "*" without a master key' in out
    cfg.write_text('server:\n  cors_origins: ["app.example.com"]\nservices:\n  - {name: m, type: mock}\n')
    code, out = GatewayProcess(["serve", "--config", str(cfg)], tmp_path / "bad.log").run_to_exit()
    assert code != 0 and "cors_origins" in out and "is not an origin" in out
