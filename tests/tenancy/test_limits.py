from __future__ import annotations

import math

import pytest

from clawdbot.tenancy.limits import SWEEP_STEP, MemoryLimiter, go_duration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter() -> tuple[MemoryLimiter, Clock]:
    clock = Clock()
    return MemoryLimiter(clock=clock), clock


def test_rpm_is_exact_over_a_sliding_window() -> None:
    lim, clock = limiter()
    key = ("key", "k1", 3, 0)
    for i in range(3):
        clock.now = 1000.0 + i * 10
        assert lim.acquire_now([key], 1).allowed
    clock.now = 1025.0
    refused = lim.acquire_now([key], 1)
    assert not refused.allowed and refused.limited_by == key
    assert refused.retry_after_s == pytest.approx(35.0)  # the first request leaves the window at 1060
    clock.now = 1060.0  # the window is (now - 60, now]: the entry of t=1000 has just left it
    assert lim.acquire_now([key], 1).allowed
    assert not lim.acquire_now([key], 1).allowed


def test_refused_request_consumes_nothing_in_any_subject() -> None:
    lim, _ = limiter()
    team, model = ("team", "t", 10, 0), ("model", "m", 1, 0)
    assert lim.acquire_now([team, model], 1).allowed
    for _ in range(5):
        assert not lim.acquire_now([team, model], 1).allowed
    d = lim.acquire_now([team], 1)
    assert d.allowed and d.usage[0].requests == 2  # the five refusals left the team untouched


def test_tpm_estimate_then_settle_to_actual() -> None:
    lim, clock = limiter()
    user = ("user", "u", 0, 1000)
    first = lim.acquire_now([user], 800)
    assert first.allowed
    assert not lim.acquire_now([user], 300).allowed
    lim.settle_now(first, 100)  # the answer was short: 700 tokens come back
    d = lim.acquire_now([user], 300)
    assert d.allowed and d.usage[0].tokens == 400
    lim.settle_now(d, 850)  # longer than estimated: the window shows the real count
    clock.now += 1
    refused = lim.acquire_now([user], 100)
    assert not refused.allowed and refused.usage[0].tokens == 950
    assert refused.retry_after_s == pytest.approx(59.0)  # the 100 of the first request free up at 1060
    never = lim.acquire_now([user], 1001)
    assert not never.allowed and never.retry_after_s == math.inf


def test_headers_follow_openai_and_the_tightest_subject() -> None:
    lim, _ = limiter()
    d = lim.acquire_now([("key", "k", 100, 10_000), ("model", "m", 5, 50_000)], 2000)
    assert d.headers == {
        "x-ratelimit-limit-requests": "5",
        "x-ratelimit-remaining-requests": "4",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "10000",
        "x-ratelimit-remaining-tokens": "8000",
        "x-ratelimit-reset-tokens": "1m0s",
    }
    assert lim.acquire_now([("key", "none", 0, 0)], 1).headers == {}


def test_go_duration_format() -> None:
    assert [go_duration(s) for s in (0, 0.02, 0.0171, 1, 1.5, 59.9994, 360, 61.25, 3723)] == [
        "0ms",
        "20ms",
        "18ms",
        "1s",
        "1.5s",
        "1m0s",
        "6m0s",
        "1m1.25s",
        "1h2m3s",
    ]


def test_idle_subjects_are_dropped_a_few_per_request() -> None:
    lim, clock = limiter()
    for i in range(1000):
        lim.acquire_now([("user", f"u{i}", 1, 0)], 1)
    assert len(lim) == 1000  # all in use within the minute
    clock.now += 30
    assert lim.acquire_now([("user", "u0", 2, 0)], 1).allowed  # used again: now the most recent
    clock.now += 31  # the others' windows are empty now, u0's not
    lim.acquire_now([("key", "busy", 0, 0)], 1)
    assert len(lim) == 1001 - SWEEP_STEP  # a few at a time: no request pays for them all
    for _ in range(1000 // SWEEP_STEP):
        lim.acquire_now([("key", "busy", 0, 0)], 1)
    assert len(lim) == 2  # busy, and u0 (in use lately), which stops the sweep at the front
    assert lim.acquire_now([("user", "u0", 1, 0)], 1).allowed is False  # its window was kept, not reset


def test_a_subject_named_twice_counts_once() -> None:
    lim, _ = limiter()
    key = ("key", "k", 2, 0)
    d = lim.acquire_now([key, key], 1)
    assert d.allowed and d.usage == (d.usage[0],) and d.usage[0].requests == 1
    lim.settle_now(d, 5)
    assert lim.acquire_now([key], 1).allowed
