"""Limits and budgets shared by two real gateway processes through the real Redis: what one
admits, the other counts, so a global limit holds exactly, whichever process a request reaches."""

from __future__ import annotations

import concurrent.futures
import threading
import uuid
from collections.abc import Iterator

import openai
import pytest

from tests.e2e.harness import GatewayProcess, closed_port
from tests.e2e.test_tenancy import MASTER, create_key
from tests.tenancy.redis_support import REDIS_URL, fresh_prefix
from tests.upstreams.openai_server import OpenAIUpstream

GLOBAL_RPM = 12


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, openai_upstream: OpenAIUpstream) -> Iterator[list[GatewayProcess]]:
    d = tmp_path_factory.mktemp("metering-redis")
    db = d / "shared.db"
    with fresh_prefix() as prefix:
        cfg = d / "clawdbot.yaml"
        cfg.write_text(f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
redis_url: {REDIS_URL}
redis_prefix: "{prefix}"
database_url: sqlite:///{db.as_posix()}
services:
  - name: oa
    type: openai
    endpoint: {openai_upstream.url}/v1
costs:
  chat-oa: {{input: 1000000, output: 1000000}}
models:
  chat-oa: [oa/mock-a]
  global:
    targets: [oa/mock-a]
    rpm: {GLOBAL_RPM}
""")
        gws = []
        try:
            for name in ("a", "b"):
                gws.append(GatewayProcess(["serve", "--config", str(cfg)], d / f"gateway-{name}.log",
                                          {"TEST_MASTER_KEY": MASTER, "CLAWDBOT_DATA_DIR": str(d / name)}).start())
            yield gws
        finally:
            for g in gws:
                g.stop()


def _client(g: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=g.url + "/v1", api_key=key, max_retries=0, timeout=20)


def _fire(pair: list[GatewayProcess], key: str, model: str, n: int, max_tokens: int | None = None) -> list[str]:
    """n requests at once, alternating between the two processes."""
    clients = [_client(g, key) for g in pair]
    start = threading.Barrier(n)

    def one(i: int) -> str:
        start.wait()
        try:
            clients[i % 2].chat.completions.create(
                model=model, messages=[{"role": "user", "content": f"hi {uuid.uuid4().hex[:6]}"}],
                **({"max_tokens": max_tokens} if max_tokens is not None else {}))
            return "ok"
        except openai.RateLimitError as exc:
            return exc.code or "429"

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_a_global_model_limit_is_exact_across_two_processes(pair: list[GatewayProcess]) -> None:
    results = _fire(pair, MASTER, "global", 3 * GLOBAL_RPM)
    assert results.count("ok") == GLOBAL_RPM, results
    assert results.count("rate_limit_exceeded") == 2 * GLOBAL_RPM


def test_a_key_budget_holds_across_two_processes(pair: list[GatewayProcess]) -> None:
    # "hi xxxxxx": worst case 9 + 2 tokens = $11 a request; the real cost is 2 + 3 = $5.
    key = create_key(pair[0], name="shared-budget", budget_usd=40, budget_period="total")["key"]
    results = _fire(pair, key, "chat-oa", 40, max_tokens=2)
    ok = results.count("ok")
    assert ok + results.count("budget_exceeded") == 40, results
    assert ok >= 3 and 5 * ok <= 40



def test_metered_requests_fail_closed_when_redis_is_unreachable(
        tmp_path_factory: pytest.TempPathFactory, openai_upstream: OpenAIUpstream) -> None:
    d = tmp_path_factory.mktemp("redis-down")
    cfg = d / "clawdbot.yaml"
    cfg.write_text(f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
redis_url: redis://127.0.0.1:{closed_port()}/0
services:
  - name: oa
    type: openai
    endpoint: {openai_upstream.url}/v1
models:
  chat-oa: [oa/mock-a]
""")
    with GatewayProcess(["serve", "--config", str(cfg)], d / "gateway.log", {"TEST_MASTER_KEY": MASTER}) as g:
        key = create_key(g, name="no-redis", rpm=10)["key"]
        with pytest.raises(openai.APIStatusError) as err:
            _client(g, key).chat.completions.create(model="chat-oa", messages=[{"role": "user", "content": "hi"}])
        assert err.value.status_code == 503 and err.value.code == "state_unavailable"
        assert err.value.response.headers["retry-after"] == "1"
        # nothing to check for the master key on an unlimited model: served as usual
        r = _client(g, MASTER).chat.completions.create(model="chat-oa", messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content == "echo: hi"
        assert "Traceback" not in g.log()
