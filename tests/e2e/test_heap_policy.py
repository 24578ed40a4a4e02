"""`server.gc_freeze: young` in a real gateway process (api/heap.py): the timed young collections
run from the app's loop with the configured interval (their freezes show in /metrics while the
gateway is idle, where CPython's own trigger would not fire), and streams through it stay whole."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.e2e.harness import GatewayProcess, metric, serve_config, until
from tests.upstreams.openai_server import OpenAIUpstream

MASTER = "sk-heap-policy-master-0123456789"


def config(upstream: OpenAIUpstream, mode: str) -> str:
    return f"""server:
  master_key: ${{TEST_MASTER_KEY}}
  gc_freeze: {mode}
  gc_young_every: 0.05
services:
  - name: oa
    type: openai
    endpoint: {upstream.base_url}
models:
  chat: [oa/mock-a]
"""


def freezes(gw: GatewayProcess) -> float:
    return metric(gw, "clawdbot_gc_freezes_total", MASTER)


@pytest.fixture(scope="module")
def young(tmp_path_factory: pytest.TempPathFactory, openai_upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    with serve_config(tmp_path_factory.mktemp("heap-young"), config(openai_upstream, "young"), MASTER) as gw:
        yield gw


def test_young_mode_collects_on_its_timer_while_idle(young: GatewayProcess) -> None:
    first = freezes(young)
    # 0.05 s apart: twenty more within a few seconds, with no request but these scrapes
    assert until(lambda: freezes(young) >= first + 20, deadline=20.0), "the timed young collections did not run"


def test_streams_through_a_young_mode_gateway_are_whole(young: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{young.port}/v1", api_key=MASTER, max_retries=0)
    for _ in range(20):
        parts = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hello"}], stream=True) if c.choices]
        assert "".join(parts)  # the mock's answer, every chunk relayed
    reply = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content
