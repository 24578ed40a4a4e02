"""The security review's probes (issue 9), kept so they stay fixed: oversized request heads, deep
JSON, huge numbers, a rebinding Host, guessed keys, junk fields around the metering, forged log
lines, header injection through a model name, and /readyz as a probe amplifier. Each runs against a
real gateway process over real sockets."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import re
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.e2e.harness import GatewayProcess, openai_upstreams
from tests.upstreams.openai_server import OpenAIUpstream

MASTER = "sk-probe-master-0123456789abcdef"
THROTTLE = "auth_failures_burst: 4, auth_failures_per_minute: 120"  # a token every 0.5 s


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIUpstream]:  # its own, so that the probes' request counts are exact
    with openai_upstreams("probes") as ups:
        yield ups["probes"]


def _config(upstream: OpenAIUpstream, server: str) -> str:
    return f"""
server: {{{server}, log_format: text}}
services:
  - name: oa
    type: openai
    endpoint: {upstream.url}/v1
    discover: false
    health_interval: 3600
    timeouts: {{connect: 1, first_byte: 5, total: 10}}
models:
  chat-oa: [oa/mock-a]
  emb: [oa/mock-emb]
"""


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    d = tmp_path_factory.mktemp("probes")
    cfg = d / "clawdbot.yaml"
    cfg.write_text(_config(upstream, f'master_key: "{MASTER}", {THROTTLE}'))
    with GatewayProcess(["serve", "--config", str(cfg)], d / "gateway.log") as gw:
        yield gw


@pytest.fixture(scope="module")
def open_gw(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    """No master key (loopback only, auth off): the setting DNS rebinding attacks."""
    d = tmp_path_factory.mktemp("probes-open")
    cfg = d / "clawdbot.yaml"
    cfg.write_text(_config(upstream, 'allowed_hosts: ["gw.example.com", "*.corp.example"]'))
    with GatewayProcess(["serve", "--config", str(cfg)], d / "gateway.log") as gw:
        yield gw


def raw(gw: GatewayProcess, data: bytes, chunk: int = 64 * 1024) -> tuple[int, bytes]:
    """Send `data` as it is (in chunks, stopping early if the server answers); (status, whole reply)."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        reply = b""
        try:
            for i in range(0, len(data), chunk):
                s.sendall(data[i:i + chunk])
                if select.select([s], [], [], 0)[0]:  # answered already (refused mid-request): stop sending
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before we finished: the reply says why
        try:
            while part := s.recv(65536):
                reply += part
                if b"\r\n\r\n" in reply and b"connection: close" not in reply.lower():
                    head, _, rest = reply.partition(b"\r\n\r\n")
                    m = re.search(rb"content-length: (\d+)", head, re.I)
                    if m and len(rest) >= int(m.group(1)):
                        break
        except ConnectionResetError:
            pass
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0
    return status, reply


def request(gw: GatewayProcess, method: str, path: str, body: Any = None, key: str | None = MASTER,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {}),
                **(headers or {})}
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        text = resp.read()
        try:
            out = json.loads(text)
        except ValueError:
            out = text
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, out
    finally:
        conn.close()


def healthy(gw: GatewayProcess) -> bool:
    return request(gw, "GET", "/healthz", key=None)[0] == 200


# -- oversized heads -------------------------------------------------------------------------------

def test_an_oversized_head_is_refused_before_the_app_runs(keyed: GatewayProcess) -> None:
    huge = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (160 * 1024 * 1024) + b"\r\n\r\n"
    status, reply = raw(keyed, huge)
    assert status == 431 and b"request_head_too_large" in reply
    assert healthy(keyed)  # the loop was never held up
    status, _ = raw(keyed, b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 414
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    status, _ = raw(keyed, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many + b"\r\n")
    assert status == 431
    upgrade = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               b"Cookie: " + b"c" * 100_000 + b"\r\n\r\n")
    assert raw(keyed, upgrade)[0] == 431
    assert "Traceback" not in keyed.log()


# -- deep JSON, huge numbers, too many values -------------------------------------------------------

def test_deep_json_is_a_400_on_every_route(keyed: GatewayProcess, upstream: OpenAIUpstream) -> None:
    deep = b"[" * 1000 + b"]" * 1000
    calls = upstream.request_count
    for path, key in (("/v1/chat/completions", MASTER), ("/v1/embeddings", MASTER), ("/admin/api/keys", MASTER),
                      ("/auth/login", None)):
        body = b'{"model":"chat-oa","messages":' + deep + b"}" if path.startswith("/v1") else deep
        status, _, out = request(keyed, "POST", path, body, key=key)
        assert status == 400, (path, out)
        assert out["error"]["code"] == "json_too_deep"
    status, _, out = request(keyed, "POST", "/v1/chat/completions", b"[" * 200_000, key=MASTER)
    assert status == 400
    assert upstream.request_count == calls
    assert "Traceback" not in keyed.log() and "RecursionError" not in keyed.log()


def test_memory_amplification_is_refused_before_decoding(keyed: GatewayProcess) -> None:
    many = b'{"model":"chat-oa","messages":[' + b",".join([b'{"role":"user","content":"x"}'] * 500_000) + b"]}"
    status, _, out = request(keyed, "POST", "/v1/chat/completions", many)
    assert status in (400, 413), out  # 15 MB of tiny messages: never decoded
    long = {"model": "chat-oa", "messages": [{"role": "user", "content": "x"}] * 3000}
    status, _, out = request(keyed, "POST", "/v1/chat/completions", long)
    assert status == 400 and out["error"]["code"] == "array_above_max_length" and out["error"]["param"] == "messages"
    status, _, out = request(keyed, "POST", "/auth/login", {"key": "k" * 10_000}, key=None)
    assert status == 413  # the login reads a few KiB at most


def test_huge_numbers_in_the_admin_api_are_400(keyed: GatewayProcess) -> None:
    for query in ("limit=99999999999999999999", "offset=" + "9" * 5000, "limit=%C2%B2", "limit=-1"):
        status, _, out = request(keyed, "GET", f"/admin/api/keys?{query}")
        assert status == 400, (query, out)
    for query in ("since=99999999999999999999999", "limit=" + "9" * 5000):
        assert request(keyed, "GET", f"/admin/api/spend?{query}")[0] == 400
    for fields in ({"expires_at": 10**30}, {"expires_in": 1e308}, {"rpm": 2**64}, {"budget_usd": 1e300},
                   {"allowed_models": ["m"] * 5000}):
        status, _, out = request(keyed, "POST", "/admin/api/keys", {"name": "n", **fields})
        assert status == 400, (fields, out)
    assert "Traceback" not in keyed.log()


# -- a rebinding Host ---------------------------------------------------------------------------------

def test_a_foreign_host_is_refused_without_a_master_key(open_gw: GatewayProcess) -> None:
    for host in ("evil.example", f"evil.example:{open_gw.port}", "127.0.0.1.evil.example", "gw.example.com.evil"):
        for path in ("/v1/models", "/", "/readyz"):
            status, _, out = request(open_gw, "GET", path, key=None, headers={"Host": host})
            assert status == 400, (host, path, out)
        upgrade = (f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Origin: http://{host}\r\nSec-WebSocket-Version: 13\r\n"
                   f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode()
        assert raw(open_gw, upgrade)[0] == 400
    for host in ("localhost", f"localhost:{open_gw.port}", "127.0.0.1", f"[::1]:{open_gw.port}", "app.localhost",
                 "gw.example.com", "a.corp.example"):
        status, _, _ = request(open_gw, "GET", "/v1/models", key=None, headers={"Host": host})
        assert status == 200, host


def test_any_host_is_answered_with_a_master_key(keyed: GatewayProcess) -> None:
    status, _, _ = request(keyed, "GET", "/v1/models", headers={"Host": "gateway.internal:443"})
    assert status == 200  # every request authenticates: a rebinding page has no key


# -- guessed keys ----------------------------------------------------------------------------------

def _until(fn: Any, seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        got = fn()
        if got is not None or time.monotonic() > deadline:
            return got
        time.sleep(0.05)  # polling a condition with a deadline


def test_guessing_is_throttled_per_address_but_the_right_key_is_never_locked_out(keyed: GatewayProcess) -> None:
    for path, send in (("/auth/login", lambda k: request(keyed, "POST", "/auth/login", {"key": k}, key=None)),
                       ("/v1/models", lambda k: request(keyed, "GET", "/v1/models", key=k))):
        statuses = [send(f"sk-wrong-{i}")[0] for i in range(5)]
        refused = statuses.index(429)  # the burst (4 here) is spent, by this path or the other one
        assert 1 <= refused <= 4 and statuses[:refused] == [401] * refused, (path, statuses)
        status, headers, out = send("sk-wrong-again")
        assert status == 429 and out["error"]["code"] == "too_many_failed_attempts", (path, out)
        assert 1 <= int(headers["retry-after"]) <= 1  # one token every 0.5 s here; 6 s by default
        # the right key gets through at the next token, not after a minute's lockout
        assert _until(lambda send=send: 200 if send(MASTER)[0] == 200 else None, 5) == 200, path


# -- junk around the metering -------------------------------------------------------------------------

def test_a_restricted_key_cannot_slip_past_metering_with_junk_fields(keyed: GatewayProcess,
                                                                     upstream: OpenAIUpstream) -> None:
    status, _, made = request(keyed, "POST", "/admin/api/keys", {"name": "emb-only", "allowed_models": ["emb"],
                                                                 "rpm": 2})
    assert status == 201, made
    key = made["key"]
    before = sum(1 for r in upstream.requests if r.path == "/v1/embeddings")
    junk = [{"messages": 1}, {"max_tokens": "x"}, {"max_completion_tokens": [1]}, {"messages": [{"role": 5}]}]
    for extra in junk:  # another model with junk: still refused
        status, _, out = request(keyed, "POST", "/v1/embeddings", {"model": "chat-oa", "input": "x", **extra}, key=key)
        assert status in (400, 403), (extra, out)
    served = [request(keyed, "POST", "/v1/embeddings", {"model": "emb", "input": "x", **extra}, key=key)[0]
              for extra in junk]
    assert served[:2] == [200, 200] and served[2:] == [429, 429]  # rpm 2 counted them all
    for body in ({"model": "emb", "messages": [{"role": "user", "content": "x"}], "max_tokens": "x"},
                 {"model": "emb", "messages": "x"}, {"messages": [], "input": "x"}, {"model": 5, "input": "x"}):
        status, _, out = request(keyed, "POST", "/v1/chat/completions", body, key=key)
        assert status in (400, 403, 429), (body, out)
    assert sum(1 for r in upstream.requests if r.path == "/v1/embeddings") == before + 2


# -- what reaches logs and headers ------------------------------------------------------------------

def test_client_strings_cannot_forge_log_lines_or_headers(keyed: GatewayProcess, upstream: OpenAIUpstream) -> None:
    forged = "2026-01-01T00:00:00.000 INFO  clawdbot.access request_id=forged status=200"
    status, _, _ = request(keyed, "GET", "/v1/x%0A" + forged.replace(" ", "%20") + "%00", key=None)
    assert status in (401, 404)
    model = "oa/mock\r\nX-Injected: 1\n" + forged
    status, headers, out = request(keyed, "POST", "/v1/chat/completions",
                                   {"model": model, "messages": [{"role": "user", "content": "hi"}]})
    assert status == 200, out  # a `service/model` route passes any model name upstream
    assert "x-injected" not in headers
    assert "\r" not in headers["x-clawdbot-attempts"] and "%0D%0A" in headers["x-clawdbot-attempts"]
    log = keyed.wait_for_log("X-Injected")
    assert not any(line.startswith("2026-01-01") for line in log.splitlines())
    assert "request_id=forged" in log and "\\n" in log and "\x00" not in log


# -- /readyz ------------------------------------------------------------------------------------------

def test_readyz_probes_once_however_many_ask_and_shows_details_only_with_a_key(keyed: GatewayProcess,
                                                                            upstream: OpenAIUpstream) -> None:
    def probes() -> int:
        return sum(1 for r in upstream.requests if r.path == "/v1/models")

    before = probes()
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda _: request(keyed, "GET", "/readyz", key=None), range(300)))
    assert {a[0] for a in answers} == {200}
    assert all(a[2] == {"status": "ready"} for a in answers)  # no service names, no errors
    assert probes() - before <= 3  # one in flight at a time, at most one a second
    status, _, out = request(keyed, "GET", "/readyz")
    assert status == 200 and out["services"]["oa"]["reachable"] is True


# -- the openai package's models.retrieve ------------------------------------------------------------

def test_models_retrieve(keyed: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=keyed.url + "/v1", api_key=MASTER, max_retries=0, timeout=10)
    assert client.models.retrieve("chat-oa").id == "chat-oa"
    assert client.models.retrieve("oa/some-model").owned_by == "oa"  # routes, though not listed
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
    status, _, made = request(keyed, "POST", "/admin/api/keys", {"name": "narrow", "allowed_models": ["emb"]})
    assert status == 201, made
    narrow = openai.OpenAI(base_url=keyed.url + "/v1", api_key=made["key"], max_retries=0, timeout=10)
    assert narrow.models.retrieve("emb").id == "emb"
    with pytest.raises(openai.NotFoundError):
        narrow.models.retrieve("chat-oa")  # exists, but not for this key
