"""Routing and resilience through a real gateway process, over real sockets: fault injection
against the test upstreams, what the `openai` client sees, which deployments were tried
(X-Clawdbot-Attempts), breaker transitions and recovery, limits, the latency strategy, the seed's
routing hook, and hot reload under load with zero failed requests."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.conftest import MASTER_KEY
from tests.e2e.harness import GatewayProcess, closed_port, openai_upstreams
from tests.upstreams.openai_server import OpenAIUpstream

SEED_HOOK = '''
def route_request(request, context):
    if context.time_of_day == "peak" and request.priority == "low":
        return "text_generator_v2"  # the low-cost model
    else:
        return "text_generator_v1"  # the high-performance model
'''


def post(gw: GatewayProcess, body: dict[str, Any], headers: dict[str, str] | None = None,
         path: str = "/v1/chat/completions") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    try:
        conn.request("POST", path, body=json.dumps(body).encode(), headers={
            "Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def chat(gw: GatewayProcess, model: str, text: str = "hi", **kw: Any) -> tuple[int, dict[str, str], bytes]:
    return post(gw, {"model": model, "messages": [{"role": "user", "content": text}], **kw.pop("extra", {})}, **kw)


def tried(headers: dict[str, str]) -> list[str]:
    """The services tried, in order."""
    return [item.split("/")[0] for item in headers["x-clawdbot-attempts"].split(", ")]


def readyz(gw: GatewayProcess) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn.request("GET", "/readyz", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    data: dict[str, Any] = json.loads(conn.getresponse().read())
    conn.close()
    return data


@pytest.fixture(scope="module")
def ups() -> Iterator[dict[str, OpenAIUpstream]]:
    with openai_upstreams(*("good", "flaky", "lat_a", "lat_b")) as servers:
        yield servers


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, ups: dict[str, OpenAIUpstream]) -> Iterator[GatewayProcess]:
    d = tmp_path_factory.mktemp("resilience")
    (d / "seed_hook.py").write_text(SEED_HOOK)
    off = "breaker: {enabled: false}"
    t = "timeouts: {connect: 1, first_byte: 1, idle: 0.5, total: 8}"
    cfg = d / "clawdbot.yaml"
    cfg.write_text(f"""
server: {{master_key: "${{TEST_MASTER_KEY}}", log_format: json}}
routing:
  windows: {{peak: ["00:00-24:00"]}}
services:
  - {{name: refused, type: openai, endpoint: "http://127.0.0.1:{closed_port()}/v1", discover: false, {off}}}
  - {{name: good, type: openai, endpoint: "{ups['good'].base_url}", {t}, {off}}}
  - {{name: limited, type: openai, endpoint: "{ups['good'].base_url}", {t}}}
  - {{name: flaky, type: openai, endpoint: "{ups['flaky'].base_url}", {t},
      breaker: {{failures: 3, cooldown: 1, trials: 1}}}}
  - {{name: tiny, type: openai, endpoint: "{ups['good'].base_url}", {t}, {off},
      limits: {{max_inflight: 1, max_queue: 0}}}}
  - {{name: lat_a, type: openai, endpoint: "{ups['lat_a'].base_url}", {off}}}
  - {{name: lat_b, type: openai, endpoint: "{ups['lat_b'].base_url}", {off}}}
  - {{name: backup, type: mock}}
  - {{name: text_generator_v1, type: openai, endpoint: "{ups['good'].base_url}", {off}}}
  - {{name: text_generator_v2, type: mock}}
models:
  guarded: [good/mock-a, backup]
  refusing: [refused/x, backup]
  dead: [refused/x]
  rate: [limited/mock-a, backup]
  breaking: [flaky/mock-a, backup]
  one: [tiny/mock-a]
  fast:
    strategy: latency
    explore: 0.2
    deployments: [lat_a/mock-a, lat_b/mock-a]
  assistant:
    targets: [text_generator_v1/mock-a, text_generator_v2]
    hook: "{d / 'seed_hook.py'}:route_request"
""")
    with GatewayProcess(["serve", "--config", str(cfg)], d / "gateway.log", {"TEST_MASTER_KEY": MASTER_KEY}) as g:
        yield g


@pytest.fixture()
def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)


@pytest.mark.parametrize(("fault", "status"), [("fault:500", "500"), ("fault:hang", "504"), ("fault:malformed", "502"),
                                               ("fault:503", "503")])
def test_retryable_failures_fail_over(gw: GatewayProcess, client: openai.OpenAI, fault: str, status: str) -> None:
    raw = client.chat.completions.with_raw_response.create(model="guarded",
                                                           messages=[{"role": "user", "content": fault}])
    assert raw.parse().choices[0].message.content  # the mock backup answered
    assert raw.headers["x-clawdbot-service"] == "backup"
    first, second = raw.headers["x-clawdbot-attempts"].split(", ")
    assert first.startswith(f"good/mock-a;status={status}") and second.startswith("backup/mock-model;status=200")


def test_unreachable_deployment_is_skipped_while_another_is_healthy(gw: GatewayProcess) -> None:
    assert readyz(gw)["services"]["refused"]["reachable"] is False  # its health check failed
    status, headers, _ = chat(gw, "refusing")
    assert status == 200 and tried(headers) == ["backup"]


def test_refused_connection_is_tried_when_nothing_else_is_left(gw: GatewayProcess) -> None:
    status, headers, body = chat(gw, "dead")
    assert status == 503 and tried(headers) == ["refused"]
    assert "error=service_unavailable" in headers["x-clawdbot-attempts"]
    assert json.loads(body)["error"]["code"] == "service_unavailable"


def test_client_errors_do_not_fail_over(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="guarded", messages=[{"role": "user", "content": "fault:400"}])
    assert tried(dict(info.value.response.headers)) == ["good"]


def test_429_retry_after_is_honoured(gw: GatewayProcess, ups: dict[str, OpenAIUpstream]) -> None:
    status, headers, _ = chat(gw, "rate", "fault:429")
    assert status == 200 and tried(headers) == ["limited", "backup"]
    before = ups["good"].request_count
    status, headers, _ = chat(gw, "rate", "no fault now")  # within the upstream's Retry-After: 3
    assert status == 200 and tried(headers) == ["backup"] and ups["good"].request_count == before


@pytest.mark.parametrize("fault", ["fault:midstream", "fault:malformed", "fault:hang_midstream"])
def test_no_retry_once_a_stream_has_started(gw: GatewayProcess, client: openai.OpenAI, fault: str) -> None:
    started = time.monotonic()
    got = []
    with pytest.raises(openai.APIError) as info:
        for c in client.chat.completions.create(model="guarded", stream=True,
                                                messages=[{"role": "user", "content": f"a b c d {fault}"}]):
            got.append(c)
    assert "service 'good'" in info.value.message
    assert got or fault == "fault:malformed"  # (a bad event in the first read may leave nothing to show)
    if fault == "fault:hang_midstream":  # the idle gap (0.5 s) ends it, not the total timeout (8 s)
        assert "idle" in info.value.message and time.monotonic() - started < 5
    status, headers, body = post(gw, {"model": "guarded", "stream": True,
                                      "messages": [{"role": "user", "content": f"a b c {fault}"}]})
    assert status == 200 and tried(headers) == ["good"] and b'"error"' in body


def test_breaker_opens_skips_and_recovers(gw: GatewayProcess, ups: dict[str, OpenAIUpstream]) -> None:
    flaky = ups["flaky"]
    flaky.fail_status = 500
    try:
        for _ in range(3):
            status, headers, _ = chat(gw, "breaking")
            assert status == 200 and tried(headers) == ["flaky", "backup"]
        assert readyz(gw)["services"]["flaky"]["breaker"] == "open"
        count = flaky.request_count
        status, headers, _ = chat(gw, "breaking")
        assert tried(headers) == ["backup"] and flaky.request_count == count  # skipped while open
    finally:
        flaky.fail_status = None
    deadline = time.monotonic() + 10  # the cooldown is 1 s: poll until a trial request reaches it
    while time.monotonic() < deadline:
        status, headers, _ = chat(gw, "breaking")
        if headers["x-clawdbot-service"] == "flaky":
            break
        time.sleep(0.05)
    assert headers["x-clawdbot-service"] == "flaky" and tried(headers) == ["flaky"]
    assert readyz(gw)["services"]["flaky"]["breaker"] == "closed"
    log = gw.wait_for_log("half_open -> closed")
    assert "closed -> open" in log and "open -> half_open" in log


def test_full_service_answers_503_with_retry_after(gw: GatewayProcess, ups: dict[str, OpenAIUpstream]) -> None:
    result: list[int] = []
    slow = threading.Thread(target=lambda: result.append(chat(gw, "one", "hold fault:slow=700")[0]))
    slow.start()
    assert ups["good"].wait_for(lambda: ups["good"].in_flight >= 1, timeout=10)
    status, headers, body = chat(gw, "one")
    slow.join(20)
    assert status == 503 and headers["retry-after"] == "1"
    assert json.loads(body)["error"]["code"] == "overloaded" and result == [200]


def test_latency_strategy_moves_off_a_slow_deployment_and_back(gw: GatewayProcess,
                                                               ups: dict[str, OpenAIUpstream]) -> None:
    def share_of(service: str, slow: OpenAIUpstream) -> float:
        slow.delay_ms = 150
        try:
            recent: list[str] = []
            for _ in range(300):  # bounded: stops as soon as traffic has moved
                recent = [*recent, chat(gw, "fast")[1]["x-clawdbot-service"]][-40:]
                if len(recent) == 40 and recent.count(service) >= 32:
                    break
            return recent.count(service) / 40
        finally:
            slow.delay_ms = 0

    assert share_of("lat_b", ups["lat_a"]) >= 0.8
    assert share_of("lat_a", ups["lat_b"]) >= 0.8  # and back when the other one slows down


@pytest.mark.parametrize(("how", "expected"), [
    ({"headers": {"X-Clawdbot-Priority": "low"}}, "text_generator_v2"),
    ({"extra": {"metadata": {"priority": "low"}}}, "text_generator_v2"),
    ({"headers": {"X-Clawdbot-Priority": "high"}}, "text_generator_v1"),
    ({}, "text_generator_v1"),
])
def test_the_seeds_routing_hook(gw: GatewayProcess, how: dict[str, Any], expected: str) -> None:
    status, headers, _ = chat(gw, "assistant", **how)
    assert status == 200 and headers["x-clawdbot-service"] == expected


# -- hot reload ----------------------------------------------------------------------------------


def reload_config(up: OpenAIUpstream, service: str, watch: float = 0.2) -> str:
    return f"""
server: {{master_key: "${{TEST_MASTER_KEY}}", log_format: json, watch_interval: {watch}}}
services:
  - {{name: {service}, type: openai, endpoint: "{up.base_url}"}}
models:
  live: [{service}/mock-a]
"""


def test_reload_under_load_fails_no_request(tmp_path: Path, ups: dict[str, OpenAIUpstream]) -> None:
    cfg = tmp_path / "clawdbot.yaml"
    cfg.write_text(reload_config(ups["good"], "first"))
    gw = GatewayProcess(["serve", "--config", str(cfg)], tmp_path / "gw.log", {"TEST_MASTER_KEY": MASTER_KEY})
    with gw:
        stop = threading.Event()
        seen: list[str] = []
        failures: list[str] = []
        lock = threading.Lock()

        def worker(stream: bool) -> None:
            for _ in range(5000):  # bounded
                if stop.is_set():
                    return
                extra = {"stream": True} if stream else {}
                text = "a b c d e fault:slow=20" if stream else "hi"
                try:
                    status, headers, body = chat(gw, "live", text, extra=extra)
                except OSError as exc:
                    status, headers, body = 0, {}, str(exc).encode()
                with lock:
                    if status != 200 or (stream and b"[DONE]" not in body):
                        failures.append(f"{status} {body[:200]!r}")
                    else:
                        seen.append(headers["x-clawdbot-service"])

        threads = [threading.Thread(target=worker, args=(i % 2 == 0,)) for i in range(6)]
        for t in threads:
            t.start()

        def serving(service: str) -> bool:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                with lock:
                    if seen[-5:] == [service] * 5:
                        return True
                time.sleep(0.02)
            return False

        try:
            assert serving("first")
            cfg.write_text(reload_config(ups["good"], "second", watch=0))
            status, _, body = post(gw, {}, path="/admin/reload")
            assert status == 200 and json.loads(body)["generation"] == 2
            assert serving("second")
            cfg.write_text(reload_config(ups["good"], "third", watch=0))
            assert gw.proc is not None
            os.kill(gw.proc.pid, signal.SIGHUP)
            assert serving("third")
            cfg.write_text("services: [oops\n")  # a broken file: rejected, the old config serves on
            status, _, body = post(gw, {}, path="/admin/reload")
            assert status == 400 and "rejected" in json.loads(body)["error"]["message"]
            assert serving("third")
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert not failures, failures[:5]
        assert len(seen) > 20
        log = gw.wait_for_log("closed 1 provider(s)")
        assert "config reload (POST /admin/reload by master) rejected" in log


def test_file_watch_reloads(tmp_path: Path, ups: dict[str, OpenAIUpstream]) -> None:
    cfg = tmp_path / "clawdbot.yaml"
    cfg.write_text(reload_config(ups["good"], "before"))
    with GatewayProcess(["serve", "--config", str(cfg)], tmp_path / "gw.log", {"TEST_MASTER_KEY": MASTER_KEY}) as gw:
        assert chat(gw, "live")[1]["x-clawdbot-service"] == "before"
        cfg.write_text(reload_config(ups["good"], "after"))
        gw.wait_for_log("config reloaded (the config file changed)")
        assert chat(gw, "live")[1]["x-clawdbot-service"] == "after"


def test_admin_reload_needs_the_master_key(gw: GatewayProcess) -> None:
    status, _, _ = post(gw, {}, headers={"Authorization": "Bearer wrong"}, path="/admin/reload")
    assert status == 401
