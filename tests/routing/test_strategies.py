from __future__ import annotations

import collections

from clawdbot.routing.strategies import Pool, cost, latency, least_inflight, ordered, round_robin, weighted
from tests.routing.fakes import deployment


def picks(strategy, pool: Pool, n: int, stream: bool = False, explore: float = 0.0) -> collections.Counter[str]:  # type: ignore[no-untyped-def]
    return collections.Counter(strategy(pool, stream, explore)[0].service for _ in range(n))


def test_weighted_split_is_within_tolerance() -> None:
    pool = Pool([deployment("a", weight=1), deployment("b", weight=3), deployment("c", weight=6)])
    n = 20_000
    got = picks(weighted, pool, n)
    for name, share in (("a", 0.1), ("b", 0.3), ("c", 0.6)):
        assert abs(got[name] / n - share) < 0.02, got


def test_every_order_lists_all_deployments_then_the_tail() -> None:
    a, b, c = deployment("a", priority=1), deployment("b", priority=0), deployment("c")
    pool = Pool([a, b], tail=[c])
    assert ordered(pool, False, 0.0) == (b, a, c)
    for _ in range(20):
        order = weighted(pool, False, 0.0)
        assert sorted(d.service for d in order[:2]) == ["a", "b"] and order[2] is c


def test_zero_weight_is_never_picked() -> None:
    pool = Pool([deployment("a", weight=0), deployment("b", weight=1)])
    assert picks(weighted, pool, 2000) == {"b": 2000}


def test_round_robin_cycles() -> None:
    pool = Pool([deployment("a"), deployment("b"), deployment("c")])
    assert [round_robin(pool, False, 0.0)[0].service for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]
    assert [d.service for d in round_robin(pool, False, 0.0)] == ["a", "b", "c"]


def test_least_inflight_picks_the_least_loaded_and_spreads_ties() -> None:
    a, b, c = deployment("a"), deployment("b"), deployment("c")
    a.upstream.stats.in_flight, b.upstream.stats.in_flight, c.upstream.stats.in_flight = 5, 1, 3
    pool = Pool([a, b, c])
    assert picks(least_inflight, pool, 10) == {"b": 10}
    b.upstream.stats.in_flight = 5
    c.upstream.stats.in_flight = 5
    assert set(picks(least_inflight, pool, 9)) == {"a", "b", "c"}


def test_latency_prefers_the_fastest_explores_and_tries_the_unmeasured() -> None:
    a, b = deployment("a"), deployment("b")
    pool = Pool([a, b])
    a.upstream.stats.ewma_ms = 50.0
    assert latency(pool, False, 0.0)[0] is b  # never measured: tried first
    b.upstream.stats.ewma_ms = 200.0
    assert picks(latency, pool, 100) == {"a": 100}
    got = picks(latency, pool, 4000, explore=0.2)
    assert 0.05 < got["b"] / 4000 < 0.15  # half the explored share lands on b
    a.upstream.stats.ewma_ttft_ms, b.upstream.stats.ewma_ttft_ms = 90.0, 10.0
    assert latency(pool, True, 0.0)[0] is b  # streams go by time to first token


def test_latency_moves_back_when_a_slow_deployment_recovers() -> None:
    a, b = deployment("a"), deployment("b")
    pool = Pool([a, b])
    for _ in range(5):
        a.upstream.stats.end(a.upstream.stats.begin() - 0.005, None, None)  # ~5 ms
        b.upstream.stats.end(b.upstream.stats.begin() - 0.300, None, None)  # ~300 ms
    assert latency(pool, False, 0.0)[0] is a
    for _ in range(15):  # b recovered: explored samples pull its average down
        b.upstream.stats.end(b.upstream.stats.begin() - 0.001, None, None)
    assert latency(pool, False, 0.0)[0] is b


def test_cost_orders_cheapest_first_unpriced_last() -> None:
    pricey = deployment("pricey", cost={"input": 5, "output": 15})
    cheap = deployment("cheap", cost={"input": 0.1, "output": 0.4})
    unknown = deployment("unknown")
    assert [d.service for d in cost(Pool([pricey, unknown, cheap]), False, 0.0)] == ["cheap", "pricey", "unknown"]
