"""USD budgets per key, user and team, per day, month or in total, that hold under concurrency.

Before dispatch a request reserves its worst case (prompt estimate + max_tokens, priced) in every
bucket that applies; a reservation is admitted only if `spent + reserved + amount <= limit` holds
in all of them (all or nothing). After the answer `settle` swaps the hold for the real cost;
`release` drops it when the request failed. So with honest worst cases spent never passes the
limit, however many requests run at once (docs/limits.md states exactly when it can).

Money is integer micro-dollars (`costs.MICROS`). Periods are UTC calendar days and months; a
reservation is charged to the period it was made in. A hold that is neither settled nor released
(a crashed request) expires after `hold_ttl_s`, so leaked holds cannot block a budget forever.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Literal, Protocol

import msgspec

from clawdbot.state.ids import unique_hex

Period = Literal["day", "month", "total"]
BudgetSubject = tuple[str, str, Period, int]  # (scope, id, period, limit in micro-dollars)
HOLD_TTL_S = 3600.0  # longer than any request may run (upstream timeouts are minutes)


class Reservation(msgspec.Struct, frozen=True):
    id: str
    amount: int  # micro-dollars held
    buckets: tuple[str, ...]  # "scope:id:period-tag", as reserved


class Refusal(msgspec.Struct, frozen=True):
    subject: BudgetSubject
    spent: int
    reserved: int
    amount: int

    @property
    def remaining(self) -> int:
        return max(0, self.subject[3] - self.spent - self.reserved)


class Budgets(Protocol):
    async def reserve(self, subjects: Sequence[BudgetSubject], worst_case: int) -> Reservation | Refusal: ...

    async def settle(self, reservation: Reservation, actual: int) -> None: ...

    async def release(self, reservation: Reservation) -> None: ...

    async def seed(self, subject: BudgetSubject, spent: int) -> None:
        """Start the subject's current period at `spent` (from the spend table) unless this store
        already counts it: a restart, or a Redis that lost its data, does not reset a budget."""
        ...


def period_tag(period: Period, now_s: float) -> str:
    if period == "total":
        return "total"
    day = datetime.fromtimestamp(now_s, UTC)
    return day.strftime("d%Y-%m-%d") if period == "day" else day.strftime("m%Y-%m")


def bucket_name(subject: BudgetSubject, now_s: float) -> str:
    scope, sid, period, _ = subject
    return f"{scope}:{sid}:{period_tag(period, now_s)}"


def buckets_of(subjects: Sequence[BudgetSubject], now_s: float) -> tuple[list[BudgetSubject], list[str]]:
    """Subjects and their bucket names, each bucket once: a bucket named twice must not hold twice."""
    seen: dict[str, BudgetSubject] = {}
    for s in subjects:
        seen.setdefault(bucket_name(s, now_s), s)
    return list(seen.values()), list(seen)


def new_reservation_id() -> str:
    return unique_hex()


class _Bucket:
    __slots__ = ("holds", "next_expiry", "reserved", "spent")

    def __init__(self) -> None:
        self.spent = 0
        self.reserved = 0
        # reservation id -> (amount, deadline); insertion order is deadline order (one TTL, one clock)
        self.holds: dict[str, tuple[int, float]] = {}
        self.next_expiry = 0.0

    def expire(self, now: float) -> None:
        # At most once a second: finding the oldest hold walks over the slots of settled ones (a
        # dict keeps them until it resizes), and a hold's TTL is an hour, so a second is nothing.
        if now < self.next_expiry:
            return
        self.next_expiry = now + 1.0
        while self.holds:
            rid, (amount, deadline) = next(iter(self.holds.items()))
            if deadline > now:
                return
            del self.holds[rid]
            self.reserved -= amount

    def drop(self, rid: str) -> None:
        hold = self.holds.pop(rid, None)
        if hold is not None:
            self.reserved -= hold[0]


class MemoryBudgets:
    """Budgets in this process: exact for one process (no await between check and write)."""

    def __init__(
        self,
        hold_ttl_s: float = HOLD_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.hold_ttl = hold_ttl_s
        self._clock = clock
        self._wall = wall
        self._buckets: dict[str, _Bucket] = {}
        self._tags: dict[str, str] = {}  # bucket -> its period tag, to drop past periods
        self._swept: dict[str, str] = {}  # the periods current at the last sweep
        self._retry_at = 0.0  # a past period's bucket still held: sweep again from then on

    def spent(self, subject: BudgetSubject) -> tuple[int, int]:
        """(spent, reserved) of the subject's current period."""
        bucket = self._buckets.get(bucket_name(subject, self._wall()))
        return (bucket.spent, bucket.reserved) if bucket is not None else (0, 0)

    async def reserve(self, subjects: Sequence[BudgetSubject], worst_case: int) -> Reservation | Refusal:
        return self.reserve_now(subjects, worst_case)

    async def seed(self, subject: BudgetSubject, spent: int) -> None:
        wall = self._wall()
        name = bucket_name(subject, wall)
        bucket = self._buckets.get(name)
        if bucket is None:
            self._sweep(wall)
            bucket = self._buckets[name] = _Bucket()
            self._tags[name] = period_tag(subject[2], wall)
        bucket.spent = max(bucket.spent, spent)

    def reserve_now(self, subjects: Sequence[BudgetSubject], worst_case: int) -> Reservation | Refusal:
        now, wall = self._clock(), self._wall()
        amount = max(0, worst_case)
        subjects, names = buckets_of(subjects, wall)
        buckets = []
        for subject, name in zip(subjects, names, strict=True):
            bucket = self._buckets.get(name)
            if bucket is None:
                self._sweep(wall)
                bucket = self._buckets[name] = _Bucket()
                self._tags[name] = period_tag(subject[2], wall)
            bucket.expire(now)
            if bucket.spent + bucket.reserved + amount > subject[3]:
                return Refusal(subject, bucket.spent, bucket.reserved, amount)
            buckets.append(bucket)
        rid = new_reservation_id()
        for bucket in buckets:
            bucket.reserved += amount
            bucket.holds[rid] = (amount, now + self.hold_ttl)
        return Reservation(rid, amount, tuple(names))

    async def settle(self, reservation: Reservation, actual: int) -> None:
        """Charge the real cost (once per reservation) in the period it was reserved in."""
        for name in reservation.buckets:
            bucket = self._buckets.get(name)
            if bucket is None:
                bucket = self._buckets[name] = _Bucket()
                self._tags[name] = name.rsplit(":", 1)[1]
            bucket.drop(reservation.id)
            bucket.spent += max(0, actual)

    async def release(self, reservation: Reservation) -> None:
        for name in reservation.buckets:
            bucket = self._buckets.get(name)
            if bucket is not None:
                bucket.drop(reservation.id)

    def _sweep(self, wall: float) -> None:
        """Drop buckets of past days and months with nothing held: memory follows the live subjects.
        Only when a period has turned since the last sweep (or a held one may have been freed, each
        minute): a pass over every bucket for each new one made N new keys cost O(N) each."""
        current = {p: period_tag(p, wall) for p in ("day", "month")}
        if current == self._swept and wall < self._retry_at:
            return
        self._swept = current
        self._retry_at = math.inf
        now = self._clock()
        stale = []
        for name, tag in self._tags.items():
            if tag != "total" and tag not in current.values():
                bucket = self._buckets[name]
                bucket.expire(now)
                if bucket.holds:
                    self._retry_at = wall + 60.0
                else:
                    stale.append(name)
        for name in stale:
            del self._buckets[name]
            del self._tags[name]
