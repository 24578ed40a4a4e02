"""Limits and budgets in Redis in one round trip each way.

Before dispatch a request needs its rate-limit admission and its budget reservation; after it,
both settled. Each is an atomic Lua script; sending the two in one pipeline halves the round trips
on the request path. They are independent scripts, so when one refuses and the other admitted, the
other is taken back (a third round trip, on the refusal path only): a refused request consumes
nothing, as when they ran one after the other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clawdbot.state.redis_client import RedisClient, ResponseError
from clawdbot.state.redis_lean import ReplyError
from clawdbot.tenancy.budgets import BudgetSubject, Refusal, Reservation
from clawdbot.tenancy.budgets_redis import RedisBudgets
from clawdbot.tenancy.limits import Decision, Subject
from clawdbot.tenancy.limits_redis import Call, RedisLimiter


class RedisMetering:
    def __init__(self, client: RedisClient, limiter: RedisLimiter, budgets: RedisBudgets) -> None:
        self._redis = client
        self.limiter = limiter
        self.budgets = budgets

    async def _run(self, calls: list[Call]) -> list[Any]:
        """The scripts in one round trip (EVALSHA, no SCRIPT EXISTS first). A script Redis does not
        know yet (first use, or a restarted Redis) is loaded and run again alone: its NOSCRIPT
        answer means it did nothing."""
        results = await self._redis.lean.execute([("EVALSHA", s.sha, len(k), *k, *a) for s, k, a in calls])
        for i, result in enumerate(results):
            if isinstance(result, ReplyError):
                if not str(result).startswith("NOSCRIPT"):
                    raise ResponseError(str(result))
                script, keys, args = calls[i]
                results[i] = await script(keys=keys, args=args)
        return results

    async def close(self) -> None:
        return None  # the client is the process's (closed by its owner)

    async def admit(self, subjects: Sequence[Subject], tokens: int, budget_subjects: Sequence[BudgetSubject],
                    worst: int) -> tuple[Decision, Reservation | Refusal]:
        """Both checks at once; the caller has both kinds of subjects."""
        lim = self.limiter.prepare(subjects, tokens)
        hold = self.budgets.prepare(budget_subjects, worst)
        lim_out, hold_out = await self._run([self.limiter.acquire_call(lim), self.budgets.reserve_call(hold)])
        decision = self.limiter.decide(lim, lim_out)
        held = self.budgets.outcome(hold, hold_out)
        if decision.allowed and isinstance(held, Refusal):
            await self.limiter.cancel(decision)
        elif not decision.allowed and isinstance(held, Reservation):
            await self.budgets.release(held)
        return decision, held

    async def settle(self, decision: Decision | None, tokens: int, reservation: Reservation | None,
                     charge: int) -> None:
        calls = []
        if decision is not None:
            call = self.limiter.settle_call(decision, tokens)
            if call is not None:
                calls.append(call)
        if reservation is not None:
            calls.append(self.budgets.settle_call(reservation, charge))
        if calls:
            await self._run(calls)
