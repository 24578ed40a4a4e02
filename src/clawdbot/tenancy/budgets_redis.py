"""Budgets shared by every gateway process, in Redis: one Lua script checks and holds atomically.

Per bucket a hash (`spent`, `reserved`, `h:<reservation>` -> amount) and a sorted set of holds by
deadline (Redis' clock, milliseconds), so a hold left by a crashed process expires. Day buckets
live three days and month buckets forty after their last write; totals do not expire.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from clawdbot.state.redis_client import RedisClient
from clawdbot.tenancy.budgets import (
    HOLD_TTL_S,
    BudgetSubject,
    Refusal,
    Reservation,
    bucket_name,
    buckets_of,
    new_reservation_id,
)
from clawdbot.tenancy.limits_redis import Call

_DAY_MS = 86_400_000
_KEY_TTL_MS = {"day": 3 * _DAY_MS, "month": 40 * _DAY_MS, "total": 0}

_EXPIRE_HOLDS = """
local function expire_holds(h, z, now)
  local ids = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, id in ipairs(ids) do
    local amount = tonumber(redis.call('HGET', h, 'h:' .. id))
    if amount then
      redis.call('HINCRBY', h, 'reserved', -amount)
      redis.call('HDEL', h, 'h:' .. id)
    end
  end
  if #ids > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', now) end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_RESERVE = (
    _EXPIRE_HOLDS
    + """
local rid, amount, hold_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local n = #KEYS / 2
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  expire_holds(h, z, now)
  local spent = tonumber(redis.call('HGET', h, 'spent')) or 0
  local reserved = tonumber(redis.call('HGET', h, 'reserved')) or 0
  if spent + reserved + amount > tonumber(ARGV[2 + 2 * i]) then
    return {0, i, spent, reserved}
  end
end
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('HINCRBY', h, 'reserved', amount)
  redis.call('HSET', h, 'h:' .. rid, amount)
  redis.call('ZADD', z, now + hold_ms, rid)
  local ttl = tonumber(ARGV[3 + 2 * i])
  if ttl > 0 then
    redis.call('PEXPIRE', h, ttl)
    redis.call('PEXPIRE', z, ttl)
  end
end
return {1, 0, 0, 0}
"""
)

_FINISH = """
local rid, charge = ARGV[1], tonumber(ARGV[2])
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local amount = tonumber(redis.call('HGET', h, 'h:' .. rid))
  if amount then
    redis.call('HINCRBY', h, 'reserved', -amount)
    redis.call('HDEL', h, 'h:' .. rid)
    redis.call('ZREM', z, rid)
  end
  if charge > 0 then redis.call('HINCRBY', h, 'spent', charge) end
end
return 0
"""


class PreparedHold:
    """One reservation's keys and arguments, to run alone or in a pipeline with other scripts."""

    __slots__ = ("amount", "args", "keys", "names", "rid", "subjects")

    def __init__(self, keys: list[str], args: list[int | str], subjects: list[BudgetSubject], names: list[str],
                 rid: str, amount: int) -> None:
        self.keys, self.args, self.subjects = keys, args, subjects
        self.names, self.rid, self.amount = names, rid, amount


class RedisBudgets:
    def __init__(
        self,
        redis: RedisClient,
        prefix: str = "clawdbot:",
        hold_ttl_s: float = HOLD_TTL_S,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._hold_ms = int(hold_ttl_s * 1000)
        self._wall = wall
        self._reserve = redis.register_script(_RESERVE)
        self._finish = redis.register_script(_FINISH)

    def _keys(self, bucket: str) -> list[str]:
        base = f"{self._prefix}budget:{bucket}"
        return [base, base + ":holds"]

    async def spent(self, subject: BudgetSubject) -> tuple[int, int]:
        """(spent, reserved) of the subject's current period."""
        values = await self._redis.hmget(self._keys(bucket_name(subject, self._wall()))[0], ["spent", "reserved"])
        return int(values[0] or 0), int(values[1] or 0)

    def prepare(self, subjects: Sequence[BudgetSubject], worst_case: int) -> PreparedHold:
        wall = self._wall()
        subjects, names = buckets_of(subjects, wall)
        rid = new_reservation_id()
        amount = max(0, worst_case)
        keys: list[str] = []
        args: list[int | str] = [rid, amount, self._hold_ms]
        for subject, name in zip(subjects, names, strict=True):
            keys.extend(self._keys(name))
            args.extend((subject[3], _KEY_TTL_MS[subject[2]]))
        return PreparedHold(keys, args, subjects, names, rid, amount)

    def reserve_call(self, prep: PreparedHold) -> Call:
        """The reservation as (script, keys, args), for a pipeline (tenancy/metering_redis.py)."""
        return self._reserve, prep.keys, prep.args

    @staticmethod
    def outcome(prep: PreparedHold, result: Sequence[Any]) -> Reservation | Refusal:
        ok, index, spent, reserved = (int(v) for v in result)
        if not ok:
            return Refusal(prep.subjects[index - 1], spent, reserved, prep.amount)
        return Reservation(prep.rid, prep.amount, tuple(prep.names))

    async def reserve(self, subjects: Sequence[BudgetSubject], worst_case: int) -> Reservation | Refusal:
        prep = self.prepare(subjects, worst_case)
        return self.outcome(prep, await self._reserve(keys=prep.keys, args=prep.args))

    async def seed(self, subject: BudgetSubject, spent: int) -> None:
        """Only where Redis has no such bucket (HSETNX): its own count is newer than the database's."""
        key = self._keys(bucket_name(subject, self._wall()))[0]
        if await self._redis.hsetnx(key, "spent", max(0, spent)):
            ttl = _KEY_TTL_MS[subject[2]]
            if ttl:
                await self._redis.pexpire(key, ttl)

    async def settle(self, reservation: Reservation, actual: int) -> None:
        """Charge the real cost (call once per reservation) in the period it was reserved in."""
        await self._finish(keys=self._all_keys(reservation), args=[reservation.id, max(0, actual)])

    def settle_call(self, reservation: Reservation, actual: int) -> Call:
        return self._finish, self._all_keys(reservation), [reservation.id, max(0, actual)]

    async def release(self, reservation: Reservation) -> None:
        await self._finish(keys=self._all_keys(reservation), args=[reservation.id, 0])

    def _all_keys(self, reservation: Reservation) -> list[str]:
        return [key for name in reservation.buckets for key in self._keys(name)]
