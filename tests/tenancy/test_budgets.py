from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

from clawdbot.tenancy.budgets import Budgets, BudgetSubject, MemoryBudgets, Refusal, Reservation, bucket_name
from clawdbot.tenancy.budgets_redis import RedisBudgets

from .redis_support import async_client, fresh_prefix

WORST = 1_000  # micro-dollars each request reserves
BUDGET = 7_500  # room for exactly 7 worst cases


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _hammer(budgets: Budgets, subjects: list[BudgetSubject], rounds: int) -> tuple[int, int]:
    """50 concurrent clients, each reserving then settling an honest actual (<= worst) until refused."""
    rng = random.Random(7)
    actuals = [rng.randint(1, WORST) for _ in range(50 * rounds)]
    charged = 0
    admitted = 0

    async def client(i: int) -> None:
        nonlocal charged, admitted
        for r in range(rounds):
            res = await budgets.reserve(subjects, WORST)
            if isinstance(res, Refusal):
                return
            admitted += 1
            await asyncio.sleep(0)  # let the others reserve while this request "runs"
            if (i + r) % 5 == 0:
                await budgets.release(res)  # a failed request
            else:
                actual = actuals[i * rounds + r]
                await budgets.settle(res, actual)
                charged += actual

    await asyncio.gather(*(client(i) for i in range(50)))
    return admitted, charged


def test_memory_budget_holds_under_concurrency() -> None:
    budgets = MemoryBudgets()
    key: BudgetSubject = ("key", "k", "day", BUDGET)
    team: BudgetSubject = ("team", "t", "total", 10**9)

    async def main() -> None:
        first = await asyncio.gather(*(budgets.reserve([key, team], WORST) for _ in range(50)))
        assert sum(isinstance(r, Reservation) for r in first) == 7  # all 50 at once: exactly 7 fit
        for r in first:
            if isinstance(r, Reservation):
                await budgets.release(r)
        admitted, charged = await _hammer(budgets, [key, team], rounds=20)
        spent, reserved = budgets.spent(key)
        assert reserved == 0 and spent == charged and admitted > 7
        assert spent <= BUDGET
        assert budgets.spent(team) == (charged, 0)  # every bucket of a request is charged alike

    asyncio.run(main())


def test_redis_budget_holds_under_concurrency() -> None:
    with fresh_prefix() as redis_prefix:
        _check_redis_budget_holds_under_concurrency(redis_prefix)


def _check_redis_budget_holds_under_concurrency(redis_prefix: str) -> None:
    async def main() -> None:
        client = async_client()
        budgets = RedisBudgets(client, prefix=redis_prefix)
        key: BudgetSubject = ("key", "k", "month", BUDGET)
        user: BudgetSubject = ("user", "u", "day", 10**9)
        try:
            first = await asyncio.gather(*(budgets.reserve([user, key], WORST) for _ in range(50)))
            assert sum(isinstance(r, Reservation) for r in first) == 7
            refusal = next(r for r in first if isinstance(r, Refusal))
            assert refusal.subject == key and refusal.reserved == 7 * WORST and refusal.remaining == 500
            for r in first:
                if isinstance(r, Reservation):
                    await budgets.release(r)
            assert await budgets.spent(key) == (0, 0)
            admitted, charged = await _hammer(budgets, [user, key], rounds=20)
            spent, reserved = await budgets.spent(key)
            assert reserved == 0 and spent == charged and admitted > 7
            assert spent <= BUDGET
            assert await budgets.spent(user) == (charged, 0)
        finally:
            await client.aclose()

    asyncio.run(main())


def test_redis_hold_of_a_crashed_request_expires() -> None:
    with fresh_prefix() as redis_prefix:
        _check_redis_hold_of_a_crashed_request_expires(redis_prefix)


def _check_redis_hold_of_a_crashed_request_expires(redis_prefix: str) -> None:
    async def main() -> None:
        client = async_client()
        budgets = RedisBudgets(client, prefix=redis_prefix, hold_ttl_s=0.001)
        key: BudgetSubject = ("key", "k", "total", WORST)
        try:
            assert isinstance(await budgets.reserve([key], WORST), Reservation)  # never settled
            for _ in range(1000):  # bounded: the hold's deadline is 1 ms away on Redis' clock
                if isinstance(await budgets.reserve([key], WORST), Reservation):
                    break
            else:
                raise AssertionError("the abandoned hold never expired")
        finally:
            await client.aclose()

    asyncio.run(main())


def test_memory_hold_expiry_and_periods() -> None:
    clock = Clock(0.0)
    wall = Clock(datetime(2026, 11, 21, 23, 59, tzinfo=UTC).timestamp())
    budgets = MemoryBudgets(hold_ttl_s=10, clock=clock, wall=wall)
    day: BudgetSubject = ("key", "k", "day", WORST)

    async def main() -> None:
        held = await budgets.reserve([day], WORST)
        assert isinstance(held, Reservation) and held.buckets == ("key:k:d2026-11-21",)
        assert isinstance(await budgets.reserve([day], 1), Refusal)
        wall.now += 120  # a new UTC day: a new bucket, while the old hold is still charged to its own day
        late = await budgets.reserve([day], WORST)
        assert isinstance(late, Reservation) and late.buckets == ("key:k:d2026-11-22",)
        await budgets.settle(held, 400)
        wall.now -= 120
        assert budgets.spent(day) == (400, 0)
        clock.now = 11  # the hold of `late` (never settled) expires
        wall.now += 120
        assert budgets.spent(day) == (0, WORST)
        assert isinstance(await budgets.reserve([day], WORST), Reservation)
        assert bucket_name(("team", "t", "month", 1), wall.now) == "team:t:m2026-11"

    asyncio.run(main())


def test_a_bucket_named_twice_holds_once() -> None:
    budgets = MemoryBudgets()
    key: BudgetSubject = ("key", "k", "total", 2 * WORST)

    async def main() -> None:
        held = await budgets.reserve([key, key], WORST)
        assert isinstance(held, Reservation) and len(held.buckets) == 1
        assert budgets.spent(key) == (0, WORST)
        await budgets.settle(held, 10)
        assert budgets.spent(key) == (10, 0)

    asyncio.run(main())


def test_past_periods_are_dropped_when_the_day_turns_and_a_held_one_once_freed() -> None:
    clock = Clock(0.0)
    wall = Clock(datetime(2026, 11, 21, 23, 0, tzinfo=UTC).timestamp())
    budgets = MemoryBudgets(hold_ttl_s=300, clock=clock, wall=wall)

    async def main() -> None:
        held = await budgets.reserve([("key", "held", "day", WORST)], WORST)
        for i in range(50):
            await budgets.settle(await budgets.reserve([("key", f"k{i}", "day", WORST)], 1), 1)
        assert len(budgets._buckets) == 51
        wall.now += 3600  # the next UTC day: the first new bucket sweeps the old day's
        await budgets.reserve([("key", "new", "day", WORST)], 1)
        assert set(budgets._buckets) == {"key:held:d2026-11-21", "key:new:d2026-11-22"}  # held: kept
        await budgets.settle(held, 10)  # charged to its own day, then freed
        wall.now += 61
        await budgets.reserve([("key", "newer", "day", WORST)], 1)
        assert set(budgets._buckets) == {"key:new:d2026-11-22", "key:newer:d2026-11-22"}

    asyncio.run(main())
