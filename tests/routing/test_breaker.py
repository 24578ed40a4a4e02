from __future__ import annotations

from clawdbot.config.schema import Breaker as Settings
from clawdbot.routing.breaker import (
    CLOSED,
    DENY,
    HALF_OPEN,
    OPEN,
    PASS,
    SLACK,
    TRIAL,
    MemoryBreaker,
    MemoryBreakers,
)


def breaker(**kw: object) -> tuple[MemoryBreaker, list[str]]:
    moves: list[str] = []
    return MemoryBreaker("svc", Settings(**kw), lambda name, state: moves.append(state)), moves  # type: ignore[arg-type]


def test_consecutive_failures_open_then_half_open_then_close() -> None:
    b, moves = breaker(failures=3, cooldown=10, trials=2)
    t = 1000.0
    for _ in range(2):
        b.record(b.allow(t), False, t)
    b.record(b.allow(t), True, t)  # a success resets the streak
    for _ in range(3):
        assert b.allow(t) == PASS
        b.record(PASS, False, t)
    assert b.state == OPEN and moves == [OPEN]
    assert b.allow(t + 5) == DENY and b.retry_after(t + 5) == 5
    # cooldown over: two trial requests at a time, no more
    assert b.allow(t + 10) == TRIAL and b.state == HALF_OPEN
    assert b.allow(t + 10) == TRIAL
    assert b.allow(t + 10) == DENY
    b.record(TRIAL, True, t + 11)
    assert b.state == HALF_OPEN
    b.record(TRIAL, True, t + 11)
    assert b.state == CLOSED and moves == [OPEN, HALF_OPEN, CLOSED]


def test_a_failed_trial_reopens() -> None:
    b, moves = breaker(failures=1, cooldown=1)
    b.record(b.allow(0.0), False, 0.0)
    assert b.allow(1.0) == TRIAL
    b.record(TRIAL, False, 1.0)
    assert b.state == OPEN and b.allow(1.5) == DENY and moves == [OPEN, HALF_OPEN, OPEN]
    assert b.snapshot(1.5)["opened"] == 2


def test_a_cancelled_trial_frees_its_slot_without_a_verdict() -> None:
    b, _ = breaker(failures=1, cooldown=1, trials=1)
    b.record(b.allow(0.0), False, 0.0)
    assert b.allow(2.0) == TRIAL and b.allow(2.0) == DENY
    b.record(TRIAL, None, 2.0)
    assert b.state == HALF_OPEN and b.allow(2.0) == TRIAL


def test_error_rate_over_the_window_opens() -> None:
    b, _ = breaker(failures=100, error_rate=0.5, window=10, min_requests=10)
    t = 50.0
    for i in range(9):
        b.record(PASS, i % 2 == 0, t)  # 4 of 9 failed, below min_requests anyway
    assert b.state == CLOSED
    b.record(PASS, False, t)  # 5 of 10
    assert b.state == OPEN


def test_old_requests_leave_the_window() -> None:
    b, _ = breaker(failures=100, error_rate=0.5, window=10, min_requests=4)
    for _ in range(3):
        b.record(PASS, False, 0.0)
    for _ in range(3):
        b.record(PASS, True, 20.0)  # the failures are 20 s old: outside the 10 s window
    b.record(PASS, False, 20.0)
    assert b.state == CLOSED and b.error_rate(20.0) == 0.25


def test_retry_after_throttles_without_counting_as_failure() -> None:
    b, moves = breaker(failures=1)
    b.throttle(10.0)
    assert b.allow(5.0) == DENY and b.retry_after(5.0) == 5.0
    assert b.allow(10.0) == PASS and b.state == CLOSED and moves == []


def test_a_wait_that_ends_a_millisecond_early_is_not_refused() -> None:
    """The gateway sleeps for retry_after() and asks again; the event loop's timer may wake it up to
    a millisecond early. The service must count as free then, and retry_after() must agree."""
    b, _ = breaker(failures=1, cooldown=2)
    b.throttle(10.0)
    assert b.allow(10.0 - 0.001) == PASS and b.retry_after(10.0 - 0.001) == 0.0
    assert b.allow(10.0 - 0.1) == DENY and b.retry_after(10.0 - 0.1) > SLACK  # not a real wait cut short
    b.record(PASS, False, 20.0)
    assert b.state == OPEN
    assert b.allow(22.0 - 0.001) == TRIAL and b.state == HALF_OPEN


def test_disabled_breaker_never_opens_nor_throttles() -> None:
    b, _ = breaker(enabled=False, failures=1)
    b.throttle(100.0)
    for _ in range(10):
        b.record(b.allow(1.0), False, 1.0)
    assert b.allow(1.0) == PASS and b.state == CLOSED


def test_store_keeps_breakers_across_reconfiguration() -> None:
    store = MemoryBreakers()
    first = store.get("a", Settings(failures=1))
    first.record(PASS, False, 0.0)
    again = store.get("a", Settings(failures=2, cooldown=5))
    assert again is first and again.state == OPEN and again.settings.cooldown == 5
    store.retain(["b"])
    assert store.snapshot() == {}
