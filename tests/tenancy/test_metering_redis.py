"""Rate limits and budgets in one Redis round trip (tenancy/metering_redis.py), on the real Redis:
when one check refuses, what the other admitted is taken back; scripts Redis forgot are reloaded."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from clawdbot.tenancy.budgets import BudgetSubject, Refusal, Reservation
from clawdbot.tenancy.budgets_redis import RedisBudgets
from clawdbot.tenancy.limits import Subject
from clawdbot.tenancy.limits_redis import RedisLimiter
from clawdbot.tenancy.metering_redis import RedisMetering
from tests.tenancy.redis_support import async_client, fresh_prefix

KEY_RPM: Subject = ("key", "k1", 1, 0)
BUDGET: BudgetSubject = ("key", "k1", "total", 100)


def run(check: Callable[[RedisMetering, RedisLimiter, RedisBudgets], Awaitable[None]]) -> None:
    with fresh_prefix() as prefix:
        async def main() -> None:
            client = async_client()
            limiter, budgets = RedisLimiter(client, prefix), RedisBudgets(client, prefix)
            try:
                await check(RedisMetering(client, limiter, budgets), limiter, budgets)
            finally:
                await client.aclose()

        asyncio.run(main())


def test_both_admit_in_one_go_and_settle_together() -> None:
    async def check(joint: RedisMetering, limiter: RedisLimiter, budgets: RedisBudgets) -> None:
        decision, held = await joint.admit([("key", "k1", 5, 100)], 10, [BUDGET], 30)
        assert decision.allowed and isinstance(held, Reservation)
        assert await budgets.spent(BUDGET) == (0, 30)
        await joint.settle(decision, 4, held, 12)
        assert await budgets.spent(BUDGET) == (12, 0)
        again = await limiter.acquire([("key", "k1", 5, 100)], 0)
        assert again.usage[0].tokens == 4 + 1 and again.usage[0].requests == 2  # the settled count, plus this one

    run(check)


def test_a_rate_limit_refusal_releases_the_budget_hold() -> None:
    async def check(joint: RedisMetering, limiter: RedisLimiter, budgets: RedisBudgets) -> None:
        assert (await limiter.acquire([KEY_RPM], 1)).allowed  # the one request of this minute
        decision, held = await joint.admit([KEY_RPM], 1, [BUDGET], 30)
        assert not decision.allowed and isinstance(held, Reservation)
        assert await budgets.spent(BUDGET) == (0, 0)  # the hold was given back

    run(check)


def test_a_budget_refusal_takes_back_the_rate_limit_admission() -> None:
    async def check(joint: RedisMetering, limiter: RedisLimiter, budgets: RedisBudgets) -> None:
        decision, held = await joint.admit([KEY_RPM], 1, [BUDGET], 101)
        assert decision.allowed and isinstance(held, Refusal)
        # the admission was cancelled: the minute's single request is still available
        assert (await limiter.acquire([KEY_RPM], 1)).allowed

    run(check)


def test_scripts_flushed_from_redis_are_loaded_again() -> None:
    async def check(joint: RedisMetering, limiter: RedisLimiter, budgets: RedisBudgets) -> None:
        await limiter._redis.execute_command("SCRIPT", "FLUSH")
        decision, held = await joint.admit([("key", "k2", 5, 0)], 1, [("key", "k2", "total", 100)], 10)
        assert decision.allowed and isinstance(held, Reservation)
        await limiter._redis.execute_command("SCRIPT", "FLUSH")
        await joint.settle(decision, 1, held, 7)
        assert await budgets.spent(("key", "k2", "total", 100)) == (7, 0)

    run(check)
