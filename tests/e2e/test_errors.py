"""Every error the API promises, as the openai client (or a raw HTTP client) sees it."""

from __future__ import annotations

import http.client
import json
import socket

import openai
import pytest

from tests.e2e.conftest import MASTER_KEY
from tests.e2e.harness import GatewayProcess
from tests.upstreams.openai_server import OpenAIUpstream as OpenAITestServer


def raw_post(gw: GatewayProcess, body: bytes, headers: dict[str, str] | None = None,
             path: str = "/v1/chat/completions") -> tuple[int, dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    hdrs = {"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json", **(headers or {})}
    conn.request("POST", path, body=body, headers=hdrs)
    resp = conn.getresponse()
    data = json.loads(resp.read())
    conn.close()
    return resp.status, data


def assert_error_shape(data: dict[str, object]) -> dict[str, object]:
    err = data["error"]
    assert isinstance(err, dict)
    assert set(err) >= {"message", "type", "param", "code"}
    assert "Traceback" not in str(err["message"])
    return err


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model": "chat-oa", "messages": [', None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "chat-oa"}', "messages"),
        (b'{"model": 5, "messages": []}', "model"),
        (b'{"model": "chat-oa", "messages": [{"role": "user", "content": 7}]}', "messages[0].content"),
        (b'{"model": "chat-oa", "messages": [{"role": "wizard", "content": "x"}]}', "messages[0].role"),
        (b'{"model": "chat-oa", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', "temperature"),
        (b'{"model": "chat-oa", "messages": [{"role": "user", "content": "x"}], "temperature": 9}', "temperature"),
        (b'{"model": "chat-oa", "messages": [{"role": "user", "content": "x"}], "n": 3}', "n"),
        (b'{"model": "chat-oa", "messages": []}', "messages"),
        (b'{"model": "chat-oa", "messages": [{"role": "tool", "content": "x"}]}', "messages[0].tool_call_id"),
        (b'[1, 2]', None),
    ],
)
def test_bad_bodies_are_400_naming_the_field(gateway: GatewayProcess, body: bytes, param: str | None) -> None:
    status, data = raw_post(gateway, body)
    assert status == 400
    err = assert_error_shape(data)
    assert err["type"] == "invalid_request_error"
    if param is not None:
        assert err["param"] == param, err


def test_invalid_utf8_is_400(gateway: GatewayProcess) -> None:
    status, data = raw_post(gateway, b'{"model": "chat-oa", "messages": [{"role": "user", "content": "\xff\xfe"}]}')
    assert status == 400
    assert "UTF-8" in str(assert_error_shape(data)["message"])


def test_wrong_content_type_is_400(gateway: GatewayProcess) -> None:
    status, data = raw_post(gateway, b"model=x", {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400
    assert assert_error_shape(data)["param"] == "Content-Type"


def test_malformed_json_raises_bad_request_in_client(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="chat-oa", messages=[{"role": "user", "content": 3}])  # type: ignore[list-item,misc]
    assert info.value.status_code == 400


def test_missing_or_wrong_key_is_401(gateway: GatewayProcess) -> None:
    for key in ("", "sk-wrong"):
        c = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key or "x", max_retries=0,
                          default_headers={} if key else {"Authorization": ""})
        with pytest.raises(openai.AuthenticationError):
            c.models.list()
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-wrong", max_retries=0).chat.completions.create(
            model="chat-oa", messages=[{"role": "user", "content": "x"}])


def test_health_needs_no_key(gateway: GatewayProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200


def test_unknown_model_is_404_with_close_matches(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="chat-oaa", messages=[{"role": "user", "content": "x"}])
    body = info.value.body
    assert isinstance(body, dict) and body["code"] == "model_not_found"
    assert "chat-oa" in body["message"]


def test_body_over_limit_is_413(gateway: GatewayProcess, client: openai.OpenAI) -> None:
    big = "x" * 70_000
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="chat-oa", messages=[{"role": "user", "content": big}])
    assert info.value.status_code == 413
    # without a Content-Length (chunked upload) the limit holds too
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    conn.putrequest("POST", "/v1/chat/completions")
    for k, v in {"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json",
                 "Transfer-Encoding": "chunked"}.items():
        conn.putheader(k, v)
    conn.endheaders()
    payload = b'{"model":"chat-oa","messages":[{"role":"user","content":"' + b"y" * 70_000 + b'"}]}'
    try:
        for i in range(0, len(payload), 8192):
            part = payload[i:i + 8192]
            conn.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        conn.send(b"0\r\n\r\n")
    except OSError:
        pass  # the gateway may answer and close before the upload ends
    assert conn.getresponse().status == 413


def test_upstream_error_is_502_with_status(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="chat-oa", messages=[{"role": "user", "content": "fault:500"}])
    assert info.value.status_code == 502
    body = info.value.body
    assert isinstance(body, dict) and body["upstream_status"] == 500 and "500" in body["message"]


@pytest.mark.parametrize("status", [400, 413, 422])
def test_the_callers_own_mistake_keeps_the_upstreams_status_and_error(client: openai.OpenAI, status: int) -> None:
    # The upstream refused the request itself: the client learns what it would have learnt calling
    # the upstream directly, in OpenAI's error shape; nothing is retried elsewhere.
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="chat-oa", messages=[{"role": "user", "content": f"fault:{status}"}])
    e = info.value
    assert e.status_code == status and isinstance(e.body, dict)
    assert e.body["message"] == f"Invalid value for 'messages': fault:{status} was injected by the test upstream."
    assert (e.type, e.code, e.param) == ("invalid_request_error", "invalid_value", "messages")
    assert e.response.headers["x-clawdbot-attempts"].startswith(f"oa/mock-a;status={status};")
    assert "," not in e.response.headers["x-clawdbot-attempts"]  # one attempt


@pytest.mark.parametrize("status", [401, 403, 404])
def test_the_gateways_or_the_upstreams_fault_stays_502(client: openai.OpenAI, status: int) -> None:
    # 401/403: the gateway's credentials; 404: a model the upstream lacks. Not the caller's doing.
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="chat-oa", messages=[{"role": "user", "content": f"fault:{status}"}])
    body = info.value.body
    assert info.value.status_code == 502 and info.value.code == "upstream_error"
    assert isinstance(body, dict) and body["upstream_status"] == status and f"answered {status}" in body["message"]


def test_upstream_429_is_rate_limit_with_retry_after(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="chat-oa", messages=[{"role": "user", "content": "fault:429"}])
    assert info.value.response.headers["retry-after"] == "3"


def test_unreachable_upstream_is_503(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="dead-model", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503


def test_upstream_timeout_is_504(client: openai.OpenAI) -> None:
    for stream in (False, True):
        with pytest.raises(openai.InternalServerError) as info:
            r = client.chat.completions.create(model="chat-oa", stream=stream,
                                               messages=[{"role": "user", "content": "fault:hang"}])
            list(r) if stream else None  # type: ignore[call-overload]
        assert info.value.status_code == 504


def test_total_timeout_ends_a_stalled_stream_with_an_error(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="chat-short", stream=True,
                                            messages=[{"role": "user", "content": "a b c fault:hang_midstream"}])
    got = []
    with pytest.raises(openai.APIError) as info:
        for c in stream:
            got.append(c)
    assert got and "timed out" in info.value.message


@pytest.mark.parametrize("model", ["chat-oa", "chat-ol"])
def test_malformed_upstream_body_is_502(client: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "fault:malformed"}])
    assert info.value.status_code == 502


def test_a_grpc_service_that_is_down_fails_clearly(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="llama-3-7b", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503
    assert "'future' is unavailable (gRPC UNAVAILABLE" in str(info.value.message)


@pytest.mark.parametrize("model", ["chat-oa", "chat-ol"])
def test_midstream_failure_raises_in_client(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(model=model, stream=True,
                                            messages=[{"role": "user", "content": "a b c d fault:midstream"}])
    got = []
    with pytest.raises(openai.APIError) as info:
        for c in stream:
            got.append(c)
    assert got, "the chunks before the failure are delivered"
    assert "service" in info.value.message


@pytest.mark.parametrize("model", ["chat-oa", "chat-ol"])
def test_malformed_stream_line_raises_in_client(client: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model=model, stream=True,
                                            messages=[{"role": "user", "content": "a b fault:malformed"}]))


def test_client_disconnect_cancels_upstream(gateway: GatewayProcess, openai_upstream: OpenAITestServer) -> None:
    """The client reads one chunk of a slow stream and hangs up; the gateway must close its upstream."""
    rid = "5f0c1a2b-3d4e-4f60-8a7b-9c0d1e2f3a4b"  # a UUID goes upstream as it came
    body = json.dumps({"model": "chat-oa", "stream": True, "messages": [
        {"role": "user", "content": "a b c d e f g h i j fault:slow=300"}]}).encode()
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {MASTER_KEY}\r\nX-Request-ID: {rid}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body)
    received = b""
    while b"data:" not in received:
        got = sock.recv(65536)
        assert got, "the gateway closed the stream"
        received += got
    sock.close()
    assert openai_upstream.wait_for_disconnect(rid, timeout=10), "upstream stream was not cancelled"
    log = gateway.wait_for_log('"status":499')
    assert rid in log


def test_models_lists_every_name_that_resolves(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"chat-oa", "chat-ol", "failover", "oa", "ol", "oa/mock-a", "ol/llama3.2:latest", "llama-3-7b"} <= ids
    for name in ("oa/mock-a", "chat-ol"):
        client.chat.completions.create(model=name, messages=[{"role": "user", "content": "x"}])


def test_embeddings(client: openai.OpenAI) -> None:
    for model in ("oa/mock-a", "ol/all-minilm:latest"):
        r = client.embeddings.create(model=model, input=["alpha", "beta"])
        assert len(r.data) == 2 and len(r.data[0].embedding) > 0
        assert r.data[0].embedding != r.data[1].embedding
        assert r.usage.prompt_tokens > 0
    b64 = client.embeddings.create(model="oa/mock-a", input="alpha", encoding_format="base64")
    assert len(b64.data[0].embedding) > 0


def test_readyz_reports_each_service(gateway: GatewayProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    conn.request("GET", "/readyz")
    resp = conn.getresponse()
    assert resp.status == 200
    assert json.loads(resp.read()) == {"status": "ready"}  # no names or errors without a key
    conn.request("GET", "/readyz", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    resp = conn.getresponse()
    data = json.loads(resp.read())
    assert resp.status == 200
    assert data["services"]["oa"]["reachable"] is True
    assert data["services"]["ol"]["reachable"] is True
    assert data["services"]["dead"]["reachable"] is False
    assert data["services"]["oa"]["latency_ms"] is not None
