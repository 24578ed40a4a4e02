"""tenancy/throttle.py: failed keys per address are throttled, never a lockout of the right key."""

from __future__ import annotations

from clawdbot.tenancy.throttle import MAX_ADDRESSES, AuthThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_defaults_throttle_guessing_to_ten_a_minute_and_delay_the_right_key_at_most_six_seconds() -> None:
    clock = Clock()
    t = AuthThrottle(clock=clock)
    for _ in range(10):
        assert t.wait("10.0.0.1") == 0
        t.failed("10.0.0.1")
    wait = t.wait("10.0.0.1")
    assert 1 <= wait <= 6  # the next attempt (a right key too) waits one refill, not a minute
    assert t.wait("10.0.0.2") == 0  # another address is not affected
    clock.now += wait
    assert t.wait("10.0.0.1") == 0
    t.failed("10.0.0.1")  # a guess uses the token up again
    assert t.wait("10.0.0.1") > 0
    guesses = 0
    for _ in range(600):  # an hour of a guesser trying every 6 s at best
        clock.now += 6.0
        if t.wait("10.0.0.1") == 0:
            t.failed("10.0.0.1")
            guesses += 1
    assert guesses <= 601  # ten a minute


def test_a_refilled_address_is_forgotten_and_the_table_is_bounded() -> None:
    clock = Clock()
    t = AuthThrottle(burst=2, per_minute=60, clock=clock)
    t.failed("a")
    assert len(t) == 1
    clock.now += 5
    assert t.wait("a") == 0 and len(t) == 0  # full again: no memory kept
    for i in range(MAX_ADDRESSES + 50):
        t.failed(f"addr-{i}")
    assert len(t) == MAX_ADDRESSES
