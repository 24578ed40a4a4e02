"""Limits and budgets in Redis in one round trip each way.

Before dispatch a request needs its rate-limit admission and its budget reservation; after it,
both settled. Each is an atomic Lua script; sending the two in one pipeline halves the round trips
on the request path. They are independent scripts, so when one refuses and the other admitted, the
other is taken back (a third round trip, on the refusal path only): a refused request consumes
nothing, as when they ran one after the other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from clawdbot.state.redis_lean import LeanRedis, ReplyError
from clawdbot.tenancy.budgets import BudgetSubject, Refusal, Reservation
from clawdbot.tenancy.budgets_redis import RedisBudgets
from clawdbot.tenancy.limits import Decision, Subject
from clawdbot.tenancy.limits_redis import Call, RedisLimiter


class RedisMetering:
    def __init__(self, client: Redis, limiter: RedisLimiter, budgets: RedisBudgets,
                 lean: LeanRedis | None = None) -> None:
        self._redis = client
        self._lean = lean  # the request path's connection (state/redis_lean.py), when the URL allows
        self.limiter = limiter
        self.budgets = budgets

    async def _run(self, calls: list[Call]) -> list[Any]:
        """The scripts in one round trip (EVALSHA; redis-py's own script pipelining would first ask
        SCRIPT EXISTS, a round trip of its own). A script Redis does not know yet (first use, or a
        restarted Redis) is loaded and run again alone: its NOSCRIPT answer means it did nothing."""
        lean = self._lean
        if lean is not None:
            results = await lean.execute([("EVALSHA", s.sha, len(k), *k, *a) for s, k, a in calls])
        else:
            pipe = self._redis.pipeline(transaction=False)
            for script, keys, args in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            results = await pipe.execute(raise_on_error=False)
        for i, result in enumerate(results):
            if isinstance(result, NoScriptError) or (isinstance(result, ReplyError)
                                                     and str(result).startswith("NOSCRIPT")):
                script, keys, args = calls[i]
                results[i] = await script(keys=keys, args=args)
            elif isinstance(result, ReplyError):
                raise ResponseError(str(result))
            elif isinstance(result, Exception):
                raise result
        return results

    async def close(self) -> None:
        if self._lean is not None:
            await self._lean.close()

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
