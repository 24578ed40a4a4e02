"""Two gateway replicas on one database and one Redis: a key revoked or changed on A is refused by B
within a second, and a circuit A opens is open on B, which sent nothing, within a second.

Both keep keys in their cache for 60 s (`server.key_cache_ttl`), so only the pub/sub invalidation
can explain a fast refusal on B."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Callable, Iterator

import openai
import pytest

from tests.e2e.harness import GatewayProcess
from tests.e2e.test_tenancy import MASTER, call
from tests.tenancy.redis_support import REDIS_URL, fresh_prefix
from tests.upstreams.openai_server import OpenAIUpstream

BOUND_S = 1.0
FLAKY = f"flaky_{uuid.uuid4().hex[:8]}"
COOLDOWN_S = 2.0


def config(upstream: str) -> str:
    return f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
  key_cache_ttl: 60
  log_format: json
services:
  - name: oa
    type: openai
    endpoint: {upstream}/v1
    timeouts: {{connect: 1, first_byte: 5, total: 10}}
  - name: {FLAKY}
    type: openai
    endpoint: {upstream}/v1
    timeouts: {{connect: 1, first_byte: 5, total: 10}}
    breaker: {{failures: 3, cooldown: {COOLDOWN_S}}}
models:
  chat-oa: [oa/mock-a]
  chat-other: [oa/mock-b]
  flaky: [{FLAKY}/mock-a]
"""


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory,
             openai_upstream: OpenAIUpstream) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    with fresh_prefix() as prefix:  # its own keys and channels, deleted afterwards; fails when Redis is down
        d = tmp_path_factory.mktemp("replicas")
        cfg = d / "clawdbot.yaml"
        cfg.write_text(config(openai_upstream.url))
        env = {"TEST_MASTER_KEY": MASTER, "CLAWDBOT_REDIS_URL": REDIS_URL, "CLAWDBOT_REDIS_PREFIX": prefix,
               "CLAWDBOT_DATABASE_URL": f"sqlite+aiosqlite:///{(d / 'shared.db').as_posix()}"}
        a = GatewayProcess(["serve", "--config", str(cfg)], d / "a.log", env)
        b = GatewayProcess(["serve", "--config", str(cfg)], d / "b.log", env)
        with a, b:
            for gw in (a, b):
                gw.wait_for_log(f"subscribed to {prefix}tenancy")
                gw.wait_for_log(f"subscribed to {prefix}breakers")
            yield a, b


def client(gw: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=20)


def chat(gw: GatewayProcess | openai.OpenAI, key: str, model: str = "chat-oa", text: str = "hi") -> str:
    c = client(gw, key) if isinstance(gw, GatewayProcess) else gw
    r = c.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
    return r.choices[0].message.content or ""


def seconds_until(refused: Callable[[], bool], since: float, limit: float = 5.0) -> float:
    """Polls `refused` until it is true; the seconds from `since` (fails after `limit`)."""
    while not refused():
        assert time.monotonic() - since < limit, f"still not refused after {limit}s"
    return time.monotonic() - since


def refuses(gw: GatewayProcess, key: str, error: type[openai.APIStatusError],
            model: str = "chat-oa") -> Callable[[], bool]:
    c = client(gw, key)  # built before the clock starts

    def check() -> bool:
        try:
            chat(c, key, model)
        except error:
            return True
        return False

    return check


def test_a_key_revoked_on_a_is_refused_by_b_within_a_second(replicas: tuple[GatewayProcess, GatewayProcess]) -> None:
    a, b = replicas
    status, out = call(a, "POST", "/admin/api/keys", {"name": "replicated"})
    assert status == 201, out
    assert chat(b, out["key"]) == "echo: hi"  # B has it in its cache now, for 60 s
    refused = refuses(b, out["key"], openai.AuthenticationError)
    status, revoked = call(a, "POST", f"/admin/api/keys/{out['id']}/revoke")
    answered = time.monotonic()
    assert status == 200 and revoked["revoked_at"] is not None
    latency = seconds_until(refused, answered)
    print(f"\nrevoke on A -> refused on B: {latency * 1000:.1f} ms")
    assert latency < BOUND_S


def test_a_key_changed_on_a_is_enforced_by_b_within_a_second(replicas: tuple[GatewayProcess, GatewayProcess]) -> None:
    a, b = replicas
    status, out = call(a, "POST", "/admin/api/keys", {"name": "narrowed", "allowed_models": ["chat-oa", "chat-other"]})
    assert status == 201, out
    assert chat(b, out["key"], "chat-other") == "echo: hi"
    refused = refuses(b, out["key"], openai.PermissionDeniedError, "chat-other")
    status, patched = call(a, "PATCH", f"/admin/api/keys/{out['id']}", {"allowed_models": ["chat-oa"]})
    answered = time.monotonic()
    assert status == 200 and patched["allowed_models"] == ["chat-oa"]
    latency = seconds_until(refused, answered)
    print(f"\nallowed_models changed on A -> refused on B: {latency * 1000:.1f} ms")
    assert latency < BOUND_S
    assert chat(b, out["key"], "chat-oa") == "echo: hi"  # what it may still use works


def circuit(gw: GatewayProcess) -> tuple[str, str]:
    """The flaky service's circuit as /readyz and /debug/stats show it."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn.request("GET", "/readyz", headers={"Authorization": f"Bearer {MASTER}"})  # the key shows the details
    ready = json.loads(conn.getresponse().read())
    conn.close()
    status, stats = call(gw, "GET", "/debug/stats")
    assert status == 200, stats
    return ready["services"][FLAKY]["breaker"], stats["services"][FLAKY]["circuit"]


def fail_once(gw: GatewayProcess) -> None:
    with pytest.raises(openai.APIStatusError):
        chat(gw, MASTER, "flaky", "fault:500")


def test_a_circuit_opened_on_a_is_open_on_b_and_both_close(replicas: tuple[GatewayProcess, GatewayProcess]) -> None:
    a, b = replicas
    assert circuit(a) == circuit(b) == ("closed", "closed")
    deadline = time.monotonic() + 10
    while True:  # A's upstream fails until A's circuit opens (3 consecutive failures)
        fail_once(a)
        opened = time.monotonic()
        if circuit(a)[0] == "open":
            break
        assert time.monotonic() < deadline, "A's circuit never opened"
    latency = seconds_until(lambda: circuit(b) == ("open", "open"), opened)
    print(f"\ncircuit opened on A -> open on B: {latency * 1000:.1f} ms")
    assert latency < BOUND_S

    deadline = time.monotonic() + COOLDOWN_S + 5
    while True:  # after the cooldown, A's trial request succeeds and closes A's circuit
        try:
            assert chat(a, MASTER, "flaky") == "echo: hi"
            break
        except openai.APIStatusError as exc:
            assert exc.status_code == 503 and time.monotonic() < deadline, exc
    closed = time.monotonic()
    assert circuit(a)[0] == "closed"
    latency = seconds_until(lambda: circuit(b) == ("closed", "closed"), closed)
    print(f"circuit closed on A -> closed on B: {latency * 1000:.1f} ms")
    assert latency < BOUND_S
    assert chat(b, MASTER, "flaky") == "echo: hi"


def test_each_replica_logged_its_subscriptions_without_secrets(replicas: tuple[GatewayProcess, GatewayProcess]) -> None:
    for gw in replicas:
        log = gw.log()
        prefix = gw.env["CLAWDBOT_REDIS_PREFIX"]
        assert f"subscribed to {prefix}tenancy on redis://127.0.0.1:6379/0" in log
        assert f"subscribed to {prefix}breakers on redis://127.0.0.1:6379/0" in log
        assert MASTER not in log
