"""Sliding windows: all-or-nothing across windows, retry-after, idle keys swept."""

from __future__ import annotations

from clawdbot.web.ratelimit import SWEEP_EVERY, SlidingWindow, take


def test_window_slides() -> None:
    w = SlidingWindow(2, window_s=60)
    assert take([(w, "u")], now=0) == 0
    assert take([(w, "u")], now=10) == 0
    assert take([(w, "u")], now=20) == 40  # the hit at 0 leaves the window at 60
    assert take([(w, "u")], now=59.5) == 1  # rounded up, never 0 while refused
    assert take([(w, "u")], now=60) == 0
    assert take([(w, "other")], now=60) == 0


def test_all_or_nothing_across_windows() -> None:
    user, session = SlidingWindow(3), SlidingWindow(1)
    assert take([(user, "u"), (session, "s1")], now=0) == 0
    assert take([(user, "u"), (session, "s1")], now=1) > 0  # the session is full...
    assert take([(user, "u"), (session, "s2")], now=2) == 0  # ...and did not use up the user's budget
    assert take([(user, "u"), (session, "s3")], now=3) == 0
    assert take([(user, "u"), (session, "s4")], now=4) == 56  # the first hit, at 0, leaves at 60


def test_zero_means_unlimited_and_idle_keys_are_swept() -> None:
    free = SlidingWindow(0)
    assert all(take([(free, "u")], now=0) == 0 for _ in range(1000)) and len(free) == 0
    w = SlidingWindow(5, window_s=60)
    for i in range(SWEEP_EVERY - 1):
        w.hit(f"k{i}", now=0)
    w.hit("late", now=100)  # the sweep: every key idle for a whole window goes
    assert len(w) == 1
