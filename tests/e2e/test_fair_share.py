"""Fair share of a full service's queue, through a real gateway process: two virtual keys made
through the admin API, a service of one slot held by a gated stream, key A queueing a flood and key
B a few requests after it. The order the upstream then receives them in is the order the queue
handed out the slot: turns between the keys with fair share (the default), A's flood first with it
off. Every wait is on an observable condition (the upstream's in-flight count, the gateway's queue
depth), never on the clock."""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import MASTER_KEY
from tests.e2e.harness import GatewayProcess, openai_upstreams, serve_config
from tests.upstreams.openai_server import OpenAIUpstream

FLOOD, FEW = 8, 4
_WHO = re.compile(r"\b(blocker|[AB]\d+)\b")


@pytest.fixture(scope="module")
def ups() -> Iterator[dict[str, OpenAIUpstream]]:
    with openai_upstreams("fair", "fifo") as servers:
        yield servers


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, ups: dict[str, OpenAIUpstream]) -> Iterator[GatewayProcess]:
    one_slot = "limits: {max_inflight: 1, max_queue: 32, queue_timeout: 60"
    config = f"""
server: {{master_key: "${{TEST_MASTER_KEY}}", log_format: json}}
services:
  - {{name: fair, type: openai, endpoint: "{ups['fair'].base_url}", discover: false,
      breaker: {{enabled: false}}, {one_slot}}}}}
  - {{name: fifo, type: openai, endpoint: "{ups['fifo'].base_url}", discover: false,
      breaker: {{enabled: false}}, {one_slot}, fair_share: {{enabled: false}}}}}}
models:
  fair: [fair/mock-a]
  fifo: [fifo/mock-a]
"""
    with serve_config(tmp_path_factory.mktemp("fair"), config, MASTER_KEY) as g:
        yield g


def call(gw: GatewayProcess, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=60)
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None,
                     {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def keys(gw: GatewayProcess) -> dict[str, str]:
    out = {}
    for name in ("A", "B"):
        status, body = call(gw, "POST", "/admin/api/keys", MASTER_KEY, {"name": f"tenant-{name}"})
        assert status == 201, body
        out[name] = body["key"]
    return out


def queued(gw: GatewayProcess, service: str) -> int:
    n: int = call(gw, "GET", "/debug/stats", MASTER_KEY)[1]["services"][service]["queued"]
    return n


def served_order(gw: GatewayProcess, up: OpenAIUpstream, model: str, keys: dict[str, str]) -> list[str]:
    """Holds the service's one slot with a gated stream, queues A's flood then B's few, opens the
    gate, and returns the order the upstream saw them in."""
    up.reset()
    up.set_gate(False)
    results: dict[str, int] = {}

    def send(label: str, key: str, stream: bool = False) -> None:
        text = f"{label} fault:gate" if stream else label
        body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=60)
        try:
            conn.request("POST", "/v1/chat/completions", json.dumps(body),
                         {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            results[label] = resp.status
        finally:
            conn.close()

    threads = [threading.Thread(target=send, args=("blocker", keys["A"], True))]
    threads[0].start()
    assert up.wait_for(lambda: up.in_flight == 1, timeout=20), "the blocker never held the slot"
    for tenant, n in (("A", FLOOD), ("B", FEW)):
        before = queued(gw, model)
        for i in range(n):
            t = threading.Thread(target=send, args=(f"{tenant}{i}", keys[tenant]))
            t.start()
            threads.append(t)
        assert up.wait_for(lambda want=before + n: queued(gw, model) == want,  # type: ignore[misc]
                           timeout=20), f"{tenant}'s requests never queued"
    up.set_gate(True)
    for t in threads:
        t.join(60)
    assert all(not t.is_alive() for t in threads)
    assert results == {label: 200 for label in results} and len(results) == 1 + FLOOD + FEW, results
    order = []
    for rec in up.requests:
        found = _WHO.search(json.dumps(rec.body))
        assert found is not None
        order.append(found.group(1))
    assert order[0] == "blocker"
    return [label[0] for label in order[1:]]


def test_a_flooding_key_takes_turns_with_the_others(gw: GatewayProcess, ups: dict[str, OpenAIUpstream],
                                                    keys: dict[str, str]) -> None:
    order = served_order(gw, ups["fair"], "fair", keys)
    # turns while both have a backlog; B's last (no backlog left on one slot) then goes first
    assert order == ["A", "B"] * (FEW - 1) + ["B"] + ["A"] * (FLOOD - FEW + 1), order
    assert queued(gw, "fair") == 0
    # each queued request's wait is in its access-log line
    log = gw.wait_until(lambda text: text.count('"queue_wait_ms"') >= FLOOD + FEW, what="queue waits logged")
    assert '"service":"fair"' in log


def test_with_fair_share_off_the_queue_is_one_fifo(gw: GatewayProcess, ups: dict[str, OpenAIUpstream],
                                                   keys: dict[str, str]) -> None:
    order = served_order(gw, ups["fifo"], "fifo", keys)
    assert order == ["A"] * FLOOD + ["B"] * FEW, order
