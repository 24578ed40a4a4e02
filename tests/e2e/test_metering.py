"""Rate limits, parallel limits and budgets of virtual keys, users, teams and models, end to end: a
real gateway process with a master key, keys made through the admin API, the openai package as the
client (max_retries=0, so each refusal is seen as the gateway sent it).

Prices make the arithmetic visible: every model of this config costs $1 per token, in and out. The
test upstream counts the words of the messages as prompt tokens and answers "echo: <text>" one word
per token, so "hi" costs 1 + 2 tokens = $3; the gateway reserves its estimate before dispatch (8
prompt tokens for one short message, plus max_tokens)."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.e2e.harness import GatewayProcess
from tests.e2e.test_tenancy import MASTER, call, client, create_key
from tests.upstreams.openai_server import OpenAIUpstream

PER_TOKEN = 1_000_000.0  # USD per million tokens: $1 a token


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, openai_upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    d = tmp_path_factory.mktemp("metering")
    cfg = d / "clawdbot.yaml"
    cfg.write_text(f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
  log_format: json
services:
  - name: oa
    type: openai
    endpoint: {openai_upstream.url}/v1
    timeouts: {{connect: 1, first_byte: 2, total: 10}}
  - name: free
    type: openai
    endpoint: {openai_upstream.url}/v1
costs:
  chat-oa: {{input: {PER_TOKEN}, output: {PER_TOKEN}}}
  capped: {{input: {PER_TOKEN}, output: {PER_TOKEN}}}
models:
  chat-oa: [oa/mock-a]
  capped:
    targets: [oa/mock-a]
    rpm: 2
  unpriced: [free/mock-a]
""")
    with GatewayProcess(["serve", "--config", str(cfg)], d / "gateway.log", {"TEST_MASTER_KEY": MASTER}) as g:
        yield g


def ask(gw: GatewayProcess, key: str, text: str = "hi", model: str = "chat-oa", **kw: Any) -> Any:
    return client(gw, key).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], **kw)


def test_rpm_is_exhausted_with_openai_headers_and_retry_after(gw: GatewayProcess) -> None:
    key = create_key(gw, name="rpm", rpm=3)["key"]
    for i in range(3):
        raw = ask(gw, key)
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        assert raw.headers["x-ratelimit-remaining-requests"] == str(2 - i)
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        assert raw.parse().choices[0].message.content == "echo: hi"
    with pytest.raises(openai.RateLimitError) as err:
        ask(gw, key)
    assert err.value.code == "rate_limit_exceeded"
    assert err.value.type == "requests"
    assert "RPM" in err.value.message and "limit 3" in err.value.message
    retry = int(err.value.response.headers["retry-after"])
    assert 1 <= retry <= 60
    assert err.value.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_tpm_counts_real_usage_and_refuses_what_can_never_fit(gw: GatewayProcess) -> None:
    # each request is estimated at 8 tokens and settles at its real 3: 30 TPM admit 8 of them
    key = create_key(gw, name="tpm", tpm=30)["key"]
    admitted = 0
    with pytest.raises(openai.RateLimitError) as err:
        for _ in range(20):
            ask(gw, key)
            admitted += 1
    assert admitted == 8
    assert err.value.type == "tokens" and "TPM" in err.value.message
    assert "retry-after" in err.value.response.headers
    other = create_key(gw, name="tpm-big", tpm=30)["key"]
    with pytest.raises(openai.RateLimitError) as err:
        ask(gw, other, max_tokens=100)
    assert "larger than" in err.value.message
    assert "retry-after" not in err.value.response.headers


def test_the_tightest_of_key_user_and_team_applies(gw: GatewayProcess) -> None:
    status, team = call(gw, "POST", "/admin/api/teams", {"name": "metered-team", "rpm": 100})
    assert status == 201, team
    status, user = call(gw, "POST", "/admin/api/users", {"name": "metered-user", "team_id": team["id"], "rpm": 3})
    assert status == 201, user
    a = create_key(gw, name="user-a", user_id=user["id"], rpm=100)["key"]
    b = create_key(gw, name="user-b", user_id=user["id"])["key"]
    ask(gw, a)
    ask(gw, b)
    raw = ask(gw, a)
    assert raw.headers["x-ratelimit-limit-requests"] == "3"  # the user's, the level with least room
    with pytest.raises(openai.RateLimitError) as err:
        ask(gw, b)  # the user's 3 per minute are shared by both keys
    assert "user " + user["id"] in err.value.message


def test_a_model_limit_holds_for_everyone_including_the_master_key(gw: GatewayProcess) -> None:
    key = create_key(gw, name="model-limit")["key"]
    ask(gw, MASTER, model="capped")
    ask(gw, key, model="capped")
    for k in (MASTER, key):
        with pytest.raises(openai.RateLimitError) as err:
            ask(gw, k, model="capped")
        assert "model 'capped'" in err.value.message
    ask(gw, MASTER, model="chat-oa")  # other models are not affected


def test_a_budget_runs_out_and_the_refusal_says_why(gw: GatewayProcess) -> None:
    # worst case per request: 8 + 2 tokens = $10; real cost $3. $25 admits 6, then 18 + 10 > 25.
    key = create_key(gw, name="budget", budget_usd=25, budget_period="day")["key"]
    done = 0
    with pytest.raises(openai.RateLimitError) as err:
        for _ in range(10):
            ask(gw, key, max_tokens=2)
            done += 1
    assert done == 6
    assert err.value.code == "budget_exceeded" and err.value.type == "insufficient_quota"
    assert "$18.0000 of $25.0000" in err.value.message
    assert err.value.response.headers["x-should-retry"] == "false"


def test_a_model_without_a_price_is_refused_to_a_budgeted_key_only(gw: GatewayProcess) -> None:
    key = create_key(gw, name="budget-unpriced", budget_usd=100)["key"]
    with pytest.raises(openai.PermissionDeniedError) as err:
        ask(gw, key, model="unpriced")
    assert err.value.code == "model_not_priced"
    free = create_key(gw, name="no-budget")["key"]
    assert ask(gw, free, model="unpriced").parse().choices[0].message.content == "echo: hi"


def test_max_parallel_refuses_the_second_request_in_flight(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    key = create_key(gw, name="parallel", max_parallel=1)["key"]
    outcome: list[BaseException | None] = []

    def hold() -> None:
        try:
            ask(gw, key, text="park fault:hang")
            outcome.append(None)
        except openai.APIError as exc:
            outcome.append(exc)

    t = threading.Thread(target=hold)
    t.start()
    assert openai_upstream.wait_for(lambda: any("park fault:hang" in str(r.body) for r in openai_upstream.requests))
    with pytest.raises(openai.RateLimitError) as err:
        ask(gw, key)
    assert err.value.code == "parallel_limit_exceeded"
    t.join(timeout=30)
    assert isinstance(outcome[0], openai.APIStatusError) and outcome[0].status_code == 504  # first byte timeout
    assert ask(gw, key).parse().choices[0].message.content == "echo: hi"  # the slot came back


def test_fifty_concurrent_requests_never_overspend_a_small_budget(gw: GatewayProcess) -> None:
    budget = 50  # worst case $10 a request (real $3): at most 5 can hold at once
    key = create_key(gw, name="fifty", budget_usd=budget, budget_period="total")["key"]
    oai = client(gw, key)
    start = threading.Barrier(50)

    def one(_: int) -> str:
        start.wait()
        try:
            oai.chat.completions.create(model="chat-oa", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
            return "ok"
        except openai.RateLimitError as exc:
            assert exc.code == "budget_exceeded", exc.message
            return "refused"

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        results = list(pool.map(one, range(50)))
    ok = results.count("ok")
    assert ok + results.count("refused") == 50
    # Never more than the budget: every admitted request costs $3, and a reservation of $10 is only
    # admitted while spent + held + 10 <= 50.
    assert 5 <= ok <= 16
    assert 3 * ok <= budget
    # The key's remaining budget is what the refusals say: one more reservation is refused too.
    with pytest.raises(openai.RateLimitError) as err:
        ask(gw, key, max_tokens=40)
    assert f"${3 * ok}.0000 of $50.0000" in err.value.message


def test_a_key_lists_only_the_models_it_may_use(gw: GatewayProcess) -> None:
    key = create_key(gw, name="lister", allowed_models=["chat-oa", "capped"])["key"]
    assert sorted(m.id for m in client(gw, key).models.list()) == ["capped", "chat-oa"]
    assert {"chat-oa", "capped", "unpriced", "oa", "free"} <= {m.id for m in client(gw, MASTER).models.list()}


def test_a_key_brought_from_elsewhere_is_hashed_and_works_once(gw: GatewayProcess) -> None:
    mine = "sk-cb-imported-" + "x" * 40
    out = create_key(gw, name="imported", key=mine, rpm=5)
    assert out["key"] == mine and out["hint"] == "sk-cb-impo...xxxx"
    assert ask(gw, mine).parse().choices[0].message.content == "echo: hi"
    status, again = call(gw, "POST", "/admin/api/keys", {"name": "twice", "key": mine})
    assert status == 409, again
    status, bad = call(gw, "POST", "/admin/api/keys", {"name": "short", "key": "sk-cb-short"})
    assert status == 400 and bad["error"]["param"] == "key", bad


def test_a_stream_is_charged_its_final_usage(gw: GatewayProcess) -> None:
    # "hi" streamed: 1 prompt + 2 completion tokens from the usage event = $3
    key = create_key(gw, name="stream-budget", budget_usd=100, budget_period="total")["key"]
    stream = client(gw, key).chat.completions.create(
        model="chat-oa", messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=5)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "echo: hi"
    with pytest.raises(openai.RateLimitError) as err:
        ask(gw, key, max_tokens=95)  # worst case 8 + 95 = $103 > the $97 left
    assert "$3.0000 of $100.0000" in err.value.message


def test_embeddings_count_against_tpm(gw: GatewayProcess) -> None:
    key = create_key(gw, name="embed-tpm", tpm=12)["key"]
    oai = client(gw, key)
    words = "one two three four five six seven eight"  # estimated 10 tokens, counted 8
    assert len(oai.embeddings.create(model="chat-oa", input=words).data) == 1
    with pytest.raises(openai.RateLimitError) as err:
        oai.embeddings.create(model="chat-oa", input=words)
    assert err.value.type == "tokens"


def test_every_metered_request_is_in_the_spend_report(gw: GatewayProcess) -> None:
    made = create_key(gw, name="spend-report")
    for text in ("a b", "c d e", "f"):
        ask(gw, made["key"], text=text)
    deadline = time.monotonic() + 10
    while True:  # polls: records reach the table in batches (metering.flush_interval)
        status, out = call(gw, "GET", f"/admin/api/spend?group_by=key&key_id={made['id']}")
        assert status == 200, out
        if out["total"]["requests"] == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    total = out["total"]
    assert total["requests"] == 3
    assert total["prompt_tokens"] == 2 + 3 + 1  # the upstream's own counts, not the estimates
    assert total["completion_tokens"] == 3 + 4 + 2
    assert total["cost_usd"] == pytest.approx(15.0)
    assert out["data"][0]["group"] == made["id"]
