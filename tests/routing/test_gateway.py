"""The attempt loop, in process, with scripted providers: failover, fallbacks, retries, budget,
breakers, limits, health, tags, rules, the hook, streams and reloads."""

from __future__ import annotations

import asyncio
import collections
import logging
import textwrap
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from clawdbot.config.loader import load_config, load_config_text
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import BadRequest, GatewayError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from clawdbot.pipeline.gateway import Gateway, attempts_header
from clawdbot.routing.breaker import OPEN
from tests.routing.fakes import gateway, request, services

ABC = services("a", "b", "c")


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def ask(gw: Gateway, model: str, **ctx_fields: object) -> tuple[str, RequestContext]:
    ctx = RequestContext("r", **ctx_fields)  # type: ignore[arg-type]
    resp = await gw.chat(request(model), ctx)
    gw.finish(ctx)
    return str(resp.message.content).split(":")[0], ctx


def test_fails_over_in_order_and_records_every_attempt() -> None:
    gw, f = gateway(ABC + "models:\n  m: [a, b, c]\n")
    f["a"].fail = UpstreamUnavailable("a is down")
    f["b"].fail = UpstreamError("b answered 500", upstream_status=500)
    who, ctx = run(ask(gw, "m"))
    assert who == "c"
    assert [(a["service"], a["ok"], a["status"]) for a in ctx.attempts] == [
        ("a", False, 503), ("b", False, 500), ("c", True, 200)]
    header = attempts_header(ctx)
    assert header.startswith("a/a;status=503;error=service_unavailable;ms=") and ", c/c;status=200;ms=" in header


def test_fallbacks_after_the_deployments_without_repeating_one() -> None:
    gw, f = gateway(ABC + "models:\n  m: {targets: [a], fallbacks: [n]}\n  n: [a, b]\n")
    f["a"].fail = UpstreamTimeout("slow")
    who, ctx = run(ask(gw, "m"))
    assert who == "b" and f["a"].calls == 1 and [a["service"] for a in ctx.attempts] == ["a", "b"]


def test_client_errors_do_not_fail_over_and_carry_the_trace() -> None:
    gw, f = gateway(ABC + "models:\n  m: [a, b]\n")
    f["a"].fail = UpstreamError("bad request", upstream_status=400)
    with pytest.raises(UpstreamError) as info:
        run(ask(gw, "m"))
    assert f["b"].calls == 0 and info.value.headers["X-Clawdbot-Attempts"].startswith("a/a;status=400")


def test_retries_the_same_deployment_with_backoff() -> None:
    gw, f = gateway(ABC + "routing: {backoff: 0.001, backoff_max: 0.01}\n"
                    "models:\n  m: {targets: [a], retries: 2}\n")
    f["a"].fail = [UpstreamUnavailable("x"), UpstreamUnavailable("y"), None]
    who, ctx = run(ask(gw, "m"))
    assert who == "a" and f["a"].calls == 3 and len(ctx.attempts) == 3


def test_retry_budget_stops_retries() -> None:
    gw, f = gateway(ABC + "routing: {retry_budget: 0, retry_min_per_second: 0}\nmodels:\n  m: [a, b]\n")
    f["a"].fail = UpstreamUnavailable("down")
    with pytest.raises(UpstreamUnavailable):
        run(ask(gw, "m"))
    assert f["b"].calls == 0


def test_max_attempts() -> None:
    gw, f = gateway(ABC + "models:\n  m: {targets: [a, b, c], max_attempts: 2}\n")
    f["a"].fail = f["b"].fail = UpstreamUnavailable("down")
    with pytest.raises(UpstreamUnavailable):
        run(ask(gw, "m"))
    assert f["c"].calls == 0


def test_breaker_opens_skips_then_recovers(caplog: pytest.LogCaptureFixture) -> None:
    gw, f = gateway(services("a", "b", extra=", breaker: {failures: 2, cooldown: 30}")
                    + "models:\n  m: [a, b]\n")

    async def main() -> None:
        f["a"].fail = UpstreamUnavailable("down")
        for _ in range(2):
            assert (await ask(gw, "m"))[0] == "b"
        br = gw.runtime.upstreams["a"].breaker
        assert br.state == OPEN and gw.monitor.states["a"].breaker == OPEN
        assert gw.metrics.snapshot()["services"]["a"]["breaker"]["state"] == OPEN
        calls = f["a"].calls
        who, ctx = await ask(gw, "m")
        assert who == "b" and f["a"].calls == calls and len(ctx.attempts) == 1  # skipped, not tried
        f["a"].fail = None
        br.open_until = 0.0  # type: ignore[attr-defined]  # the cooldown is over
        who, _ = await ask(gw, "m")
        assert who == "a" and br.state == "closed"

    with caplog.at_level(logging.INFO, "clawdbot.breaker"):
        run(main())
    assert "closed -> open" in caplog.text and "half_open -> closed" in caplog.text


def test_every_circuit_open_is_503_with_retry_after() -> None:
    gw, f = gateway(services("a", extra=", breaker: {failures: 1, cooldown: 30}") + "models:\n  m: [a]\n")
    f["a"].fail = UpstreamUnavailable("down")
    with pytest.raises(UpstreamUnavailable):
        run(ask(gw, "m"))
    with pytest.raises(GatewayError) as info:
        run(ask(gw, "m"))
    assert info.value.code == "circuit_open" and 0 < int(info.value.headers["Retry-After"]) <= 30


def test_429_retry_after_sets_the_service_aside() -> None:
    gw, f = gateway(ABC + "models:\n  m: [a, b]\n")
    f["a"].fail = [UpstreamError("slow down", upstream_status=429, headers={"Retry-After": "30"})]
    assert run(ask(gw, "m"))[0] == "b"
    assert run(ask(gw, "m"))[0] == "b" and f["a"].calls == 1


def test_unhealthy_deployments_go_last_while_others_are_healthy() -> None:
    gw, _ = gateway(ABC + "models:\n  m: [a, b]\n")
    gw.monitor.states["a"].reachable = False
    assert run(ask(gw, "m"))[0] == "b"
    gw.monitor.states["b"].reachable = False
    assert run(ask(gw, "m"))[0] == "a"  # nothing healthy: the order stands


def test_full_service_spills_over_then_queues_then_503() -> None:
    gw, f = gateway(services("a", "b", extra=", limits: {max_inflight: 1, max_queue: 1, queue_timeout: 5}")
                    + "models:\n  m: [a, b]\n  only: [a]\n")

    async def main() -> None:
        gate = asyncio.Event()
        f["a"].gate = gate
        first = asyncio.create_task(ask(gw, "m"))
        await f["a"].entered.wait()
        assert (await ask(gw, "m"))[0] == "b"  # a is full: spill over
        queued = asyncio.create_task(ask(gw, "only"))
        await asyncio.sleep(0)
        assert gw.runtime.upstreams["a"].limiter.waiting == 1
        with pytest.raises(GatewayError) as info:  # a's queue is full too
            await ask(gw, "only")
        assert info.value.status == 503 and info.value.headers["Retry-After"] == "1"
        gate.set()
        assert (await first)[0] == "a" and (await queued)[0] == "a"
        assert gw.runtime.upstreams["a"].limiter.inflight == 0

    run(main())


def test_tags_steer_and_zero_weight_is_reserved() -> None:
    yaml = ABC + textwrap.dedent("""\
        models:
          m:
            strategy: weighted
            deployments:
              - {service: a, weight: 1}
              - {service: b, weight: 0, tags: [canary]}
        """)
    gw, _ = gateway(yaml)
    assert {run(ask(gw, "m"))[0] for _ in range(30)} == {"a"}
    assert {run(ask(gw, "m", tag="canary"))[0] for _ in range(10)} == {"b"}
    assert run(ask(gw, "m", tag="nope"))[0] == "a"


def test_weighted_canary_split() -> None:
    yaml = ABC + "models:\n  m:\n    strategy: weighted\n    deployments:\n" \
                 "      - {service: a, weight: 9}\n      - {service: b, weight: 1, tags: [canary]}\n"
    gw, _ = gateway(yaml)

    async def main() -> collections.Counter[str]:
        return collections.Counter([(await ask(gw, "m"))[0] for _ in range(3000)])

    got = run(main())
    assert abs(got["b"] / 3000 - 0.1) < 0.03, got


SEED_RULES = textwrap.dedent("""\
    services:
      - {name: text_generator_v1, type: mock}
      - {name: text_generator_v2, type: mock}
    routing:
      timezone: Asia/Shanghai
      windows: {peak: ["00:00-24:00"]}
    models:
      assistant:
        strategy: rules
        deployments:
          - {service: text_generator_v1, tags: [performance]}
          - {service: text_generator_v2, tags: [low_cost]}
        rules:
          - {when: {priority: low, time: peak}, use: low_cost}
    """)


def test_rules_send_low_priority_at_peak_to_the_low_cost_group() -> None:
    gw, _ = gateway(SEED_RULES)
    assert run(ask(gw, "assistant", priority="low"))[0] == "text_generator_v2"
    assert run(ask(gw, "assistant", priority="high"))[0] == "text_generator_v1"
    assert run(ask(gw, "assistant"))[0] == "text_generator_v1"


SEED_HOOK = '''
def route_request(request, context):
    if context.time_of_day == "peak" and request.priority == "low":
        return "text_generator_v2"  # the low-cost model
    else:
        return "text_generator_v1"  # the high-performance model
'''


def hook_gateway(tmp_path: Path, body: str) -> Gateway:
    hook = tmp_path / "seed_hook.py"
    hook.write_text(body)
    gw, _ = gateway(textwrap.dedent(f"""\
        services:
          - {{name: text_generator_v1, type: mock}}
          - {{name: text_generator_v2, type: mock}}
        routing:
          windows: {{peak: ["00:00-24:00"]}}
        models:
          assistant:
            targets: [text_generator_v1, text_generator_v2]
            strategy: round_robin
            hook: "{hook}:route_request"
        """))
    return gw


def test_the_seeds_hook(tmp_path: Path) -> None:
    gw = hook_gateway(tmp_path, SEED_HOOK)
    for _ in range(3):
        assert run(ask(gw, "assistant", priority="low"))[0] == "text_generator_v2"
        assert run(ask(gw, "assistant", priority="high"))[0] == "text_generator_v1"


def test_hook_context_exposes_live_numbers(tmp_path: Path) -> None:
    gw = hook_gateway(tmp_path, '''
seen = []
def route_request(request, context):
    s = context.services["text_generator_v2"]
    seen.append((request.model, context.time_of_day, s.in_flight, s.healthy, s.breaker, context.deployments))
    return None
''')
    run(ask(gw, "assistant"))
    hook = gw.runtime.router.route("assistant").hook
    assert hook is not None
    seen = hook.fn.__globals__["seen"]
    assert seen == [("assistant", "peak", 0, True, "closed", ["text_generator_v1", "text_generator_v2"])]


@pytest.mark.parametrize("body", ["def route_request(r, c):\n    raise KeyError('boom')\n",
                                  "def route_request(r, c):\n    return 'nonexistent'\n"])
def test_a_broken_hook_falls_back_to_the_strategy_and_says_why(
        tmp_path: Path, body: str, caplog: pytest.LogCaptureFixture) -> None:
    gw = hook_gateway(tmp_path, body)
    with caplog.at_level(logging.WARNING, "clawdbot.routing"):
        got = {run(ask(gw, "assistant"))[0] for _ in range(4)}
    assert got == {"text_generator_v1", "text_generator_v2"}  # round robin went on
    assert caplog.text.count("routing hook") == 1  # logged once, not per request
    assert "boom" in caplog.text or "nonexistent" in caplog.text


def test_streams_fail_over_before_the_first_chunk_never_after() -> None:
    gw, f = gateway(ABC + "models:\n  m: [a, b]\n")

    async def collect(ctx: RequestContext) -> str:
        out = ""
        async for chunk in gw.stream(request("m", stream=True), ctx):
            out += chunk.content or ""
        return out

    f["a"].fail = [UpstreamUnavailable("down")]
    assert run(collect(RequestContext("r"))) == "b0 b1 b2 "
    f["a"].stream_fail_after = 1
    ctx = RequestContext("r")
    with pytest.raises(GatewayError):
        run(collect(ctx))
    assert [a["service"] for a in ctx.attempts] == ["a"] and f["b"].calls == 1
    assert gw.runtime.upstreams["a"].breaker.consecutive == 2  # type: ignore[attr-defined]  # open + mid-stream


def test_unknown_model_is_not_a_routing_error() -> None:
    gw, _ = gateway(ABC)
    with pytest.raises(GatewayError) as info:
        run(ask(gw, "zzz"))
    assert info.value.status == 404
    with pytest.raises(BadRequest):
        raise BadRequest("x")


def test_reload_swaps_and_in_flight_requests_finish_on_their_config() -> None:
    gw, f = gateway(ABC + "models:\n  m: [a]\n")

    async def main() -> None:
        gate = asyncio.Event()
        f["a"].gate = gate
        old = gw.runtime
        slow = asyncio.create_task(ask(gw, "m"))
        await f["a"].entered.wait()
        summary = await gw.reload(load_config_text(services("b", "c") + "models:\n  m: [b]\n"))
        assert summary["generation"] == 2 and gw.runtime is not old and old.retired
        assert gw.runtime.upstreams["b"] is old.upstreams["b"]  # unchanged: kept, warm
        assert not f["a"].closed  # still answering
        gate.set()
        assert (await slow)[0] == "a"
        for _ in range(100):
            if f["a"].closed:
                break
            await asyncio.sleep(0)
        assert f["a"].closed and old.active == 0

    run(main())


def test_a_reload_runs_a_hook_file_again_only_when_it_changed(tmp_path: Path) -> None:
    hook = tmp_path / "counting_hook.py"
    runs = tmp_path / "runs.txt"
    hook.write_text(f"open({str(runs)!r}, 'a').write('x')\ndef route_request(request, context):\n    return 'a'\n")
    text = ABC + f"models:\n  m: {{targets: [a, b], hook: '{hook}:route_request'}}\n"
    gw, _ = gateway(text)

    async def main() -> None:
        for _ in range(3):
            await gw.reload(load_config_text(text))
        assert runs.read_text() == "x"  # imported once, however many reloads
        hook.write_text(hook.read_text().replace("return 'a'", "return 'b'  # edited"))
        await gw.reload(load_config_text(text))
        assert runs.read_text() == "xx"  # the edit is picked up
        assert gw.runtime.router.route("m").hook is not None
        assert gw.runtime.router.route("m").hook.fn(None, None) == "b"

    run(main())


def test_a_rejected_hook_names_its_file_and_line_on_reload(tmp_path: Path) -> None:
    cfg = tmp_path / "clawdbot.yaml"
    good = ABC + "models:\n  m: [a]\n"
    cfg.write_text(good)
    gw = Gateway(load_config_text(good), None, lambda: load_config(cfg), str(cfg))

    async def main() -> None:
        cfg.write_text(ABC + "models:\n  m:\n    targets: [a]\n    hook: nowhere_module:f\n")
        ok, why = await gw.reloader.reload("test")
        assert not ok and f"{cfg}:" in str(why) and "models.m.hook: cannot import hook" in str(why)

    run(main())


def test_reload_keeps_unchanged_services_and_rejects_a_bad_hook(tmp_path: Path) -> None:
    gw, _ = gateway(ABC + "models:\n  m: [a]\n")

    async def main() -> None:
        before = gw.runtime.upstreams["a"]
        await gw.reload(load_config_text(ABC + "models:\n  m: [a, b]\n"))
        assert gw.runtime.upstreams["a"] is before and gw.runtime.router.route("m").deps[1].service == "b"
        bad = ABC + f"models:\n  m: {{targets: [a], hook: '{tmp_path}/missing.py:f'}}\n"
        current = gw.runtime
        with pytest.raises(Exception, match="cannot"):
            await gw.reload(load_config_text(bad))
        assert gw.runtime is current

    run(main())
