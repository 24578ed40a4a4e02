"""Upstream connections through a real gateway process: `max_pool` bounds only the idle keep-alive
connections kept, never the requests in flight; `limits.max_inflight` bounds both, and what it
refuses is local overload (503 `overloaded`), never a failure of the service's breaker. Concurrency
and open sockets are counted at the upstream."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.e2e.conftest import MASTER_KEY
from tests.e2e.harness import GatewayProcess, openai_upstreams
from tests.upstreams.openai_server import OpenAIUpstream

STREAMS = 20
PACED = "a b c d fault:chunks=3 fault:slow=300"  # five events, 300 ms apart: ~1.2 s per stream


@pytest.fixture(scope="module")
def ups() -> Iterator[dict[str, OpenAIUpstream]]:
    with openai_upstreams(*("wide", "narrow", "probed")) as servers:
        yield servers


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, ups: dict[str, OpenAIUpstream]) -> Iterator[GatewayProcess]:
    d = tmp_path_factory.mktemp("pool")
    cfg = d / "clawdbot.yaml"
    cfg.write_text(f"""
server: {{master_key: "${{TEST_MASTER_KEY}}", log_format: json}}
services:
  - {{name: wide, type: openai, endpoint: "{ups['wide'].base_url}", discover: false, max_pool: 4,
      breaker: {{enabled: false}}}}
  - {{name: narrow, type: openai, endpoint: "{ups['narrow'].base_url}", discover: false, max_pool: 1,
      timeouts: {{first_byte: 1}}, breaker: {{failures: 1}},
      limits: {{max_inflight: 2, max_queue: 1, queue_timeout: 0.5}}}}
  - {{name: one, type: openai, endpoint: "{ups['probed'].base_url}", discover: false,
      timeouts: {{connect: 1}}, breaker: {{enabled: false}}, limits: {{max_inflight: 1}}}}
models:
  wide: [wide/mock-a]
  narrow: [narrow/mock-a]
  one: [one/mock-a]
""")
    with GatewayProcess(["serve", "--config", str(cfg)], d / "gateway.log", {"TEST_MASTER_KEY": MASTER_KEY}) as g:
        yield g


def get(gw: GatewayProcess, path: str) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {MASTER_KEY}"})
        data: dict[str, Any] = json.loads(conn.getresponse().read())
        return data
    finally:
        conn.close()


def debug_service(gw: GatewayProcess, name: str) -> dict[str, Any]:
    entry: dict[str, Any] = get(gw, "/debug/stats")["services"][name]
    return entry


async def streams(gw: GatewayProcess, model: str, n: int) -> list[int]:
    """`n` concurrent streams through the openai package; the status of each (200: read to its end)."""
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=30)

    async def one() -> int:
        try:
            stream = await client.chat.completions.create(
                model=model, stream=True, messages=[{"role": "user", "content": PACED}])
            async for _ in stream:
                pass
        except openai.APIStatusError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            assert exc.status_code != 503 or (body.get("code") == "overloaded"
                                              and exc.response.headers["Retry-After"] == "1"), body
            return exc.status_code
        return 200

    try:
        return await asyncio.gather(*(one() for _ in range(n)))
    finally:
        await client.close()


def test_max_pool_bounds_idle_connections_not_requests_in_flight(gw: GatewayProcess,
                                                                 ups: dict[str, OpenAIUpstream]) -> None:
    up = ups["wide"]
    up.reset()
    assert asyncio.run(streams(gw, "wide", STREAMS)) == [200] * STREAMS
    assert up.peak_in_flight > 4, "max_pool: 4 held the streams back"
    # the streams are over: the gateway keeps at most max_pool of their connections open
    assert up.wait_for(lambda: up.open_connections() <= 4, timeout=10), up.open_connections()
    pool = debug_service(gw, "wide")["pool"]
    assert pool["opened"] >= up.peak_in_flight and pool["idle"] <= 4 and pool["open"] == pool["idle"]
    assert pool["waits"] == 0 and pool["maxOpen"] is None and pool["maxIdle"] == 4


def test_max_inflight_refuses_the_excess_as_overload_and_the_breaker_stays_closed(
        gw: GatewayProcess, ups: dict[str, OpenAIUpstream]) -> None:
    up = ups["narrow"]
    up.reset()
    statuses = asyncio.run(streams(gw, "narrow", 6))
    # two in flight (max_pool: 1 does not hold the second back), one waits 0.5 s in the queue, the
    # rest are refused at once; every refusal is 503 overloaded with Retry-After (checked above)
    assert sorted(statuses) == [200, 200, 503, 503, 503, 503]
    assert up.peak_in_flight == 2
    assert get(gw, "/readyz")["services"]["narrow"]["breaker"] == "closed"
    stats = debug_service(gw, "narrow")
    assert stats["circuit"] == "closed" and stats["errors"] == 0
    assert stats["pool"]["maxOpen"] == 3  # max_inflight, and one for the service's health check


def test_a_slow_health_check_neither_multiplies_nor_holds_up_a_request(gw: GatewayProcess,
                                                                        ups: dict[str, OpenAIUpstream]) -> None:
    """Service `one` (max_inflight: 1) may open two connections: a request and a health check.
    However many /readyz callers ask while its probe hangs, one probe is in flight, so a request
    never waits for a connection (a wait, were one to happen, is counted and logged: see
    tests/providers/test_http_pool.py)."""
    up = ups["probed"]
    up.models_delay_ms = 10_000
    up.models_peak = 0
    stop = threading.Event()

    def ask_ready() -> None:  # /readyz refreshes a probe result older than 1 s
        deadline = time.monotonic() + 4
        while not stop.is_set() and time.monotonic() < deadline:
            get(gw, "/readyz")
            stop.wait(0.05)

    checks = [threading.Thread(target=ask_ready) for _ in range(4)]
    for t in checks:
        t.start()
    try:
        assert up.wait_for(lambda: up.models_in_flight >= 1, timeout=15)
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
        conn.request("POST", "/v1/chat/completions", headers={
            "Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json", "X-Request-ID": "no-wait"},
            body=json.dumps({"model": "one", "messages": [{"role": "user", "content": "hi"}]}).encode())
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        conn.close()
        for t in checks:
            t.join(30)
    finally:
        stop.set()
        up.models_delay_ms = 0
        for t in checks:
            t.join(30)
    assert up.models_peak == 1  # four callers, one probe at a time
    pool = debug_service(gw, "one")["pool"]
    assert pool["waits"] == 0 and pool["refused"] == 0 and pool["maxOpen"] == 2
    log = gw.wait_for_log('"request_id":"no-wait"')
    line = json.loads(next(ln for ln in log.splitlines() if '"request_id":"no-wait"' in ln and '"access"' in ln))
    assert line["status"] == 200 and "pool_wait_ms" not in line
