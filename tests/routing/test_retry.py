from __future__ import annotations

import time

from clawdbot.routing.retry import RetryBudget, backoff, retry_after_seconds


def test_budget_allows_ratio_retries_per_request() -> None:
    b = RetryBudget(0.2, 0.0)
    allowed = 0
    for _ in range(100):
        b.deposit()
        allowed += b.spend(0.0)  # every request fails and wants a retry
    assert 19 <= allowed <= 21


def test_budget_floor_refills_with_time() -> None:
    t = time.monotonic()
    b = RetryBudget(0.0, 2.0)
    assert b.spend(t) and b.spend(t) and not b.spend(t)
    assert b.spend(t + 0.6) and not b.spend(t + 0.6)


def test_backoff_is_jittered_and_capped() -> None:
    for n in range(1, 10):
        for _ in range(50):
            assert 0.0 <= backoff(n, 0.1, 1.0) <= min(1.0, 0.1 * 2 ** (n - 1))


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("junk") is None and retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
