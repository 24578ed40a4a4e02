"""The limiter shared by every gateway process: the same sliding log, in Redis, one Lua script per call.

Per subject a sorted set (ticket -> admission time in microseconds) and a hash (ticket -> tokens,
plus `#sum`). The script reads Redis' own clock (`TIME`), so processes whose clocks disagree still
share one window, and it checks and writes all subjects of a request in one atomic step: exact
across processes, and a refused request writes nothing. Both keys expire one period after their
last admission, so idle subjects cost no memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from clawdbot.state.redis_client import RedisClient, Script
from clawdbot.tenancy.limits import PERIOD_S, Decision, Subject, Usage, new_ticket, unique

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local ticket = ARGV[2]
local tokens = tonumber(ARGV[3])
local start = now - period
local n = #KEYS / 2
local retry, never, limited = 0, 0, 0
local counts, sums = {}, {}
for i = 1, n do
  local z, h = KEYS[2 * i - 1], KEYS[2 * i]
  local rpm, tpm = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', start)
  if #old > 0 then
    local freed = 0
    for _, m in ipairs(old) do
      freed = freed + (tonumber(redis.call('HGET', h, m)) or 0)
      redis.call('HDEL', h, m)
    end
    redis.call('HINCRBY', h, '#sum', -freed)
    redis.call('ZREMRANGEBYSCORE', z, '-inf', start)
  end
  local count = redis.call('ZCARD', z)
  local sum = tonumber(redis.call('HGET', h, '#sum')) or 0
  counts[i], sums[i] = count, sum
  local wait, refused = 0, false
  if rpm > 0 and count + 1 > rpm then
    refused = true
    local e = redis.call('ZRANGE', z, count - rpm, count - rpm, 'WITHSCORES')
    wait = tonumber(e[2]) + period - now
  end
  if tpm > 0 and sum + tokens > tpm then
    refused = true
    if tokens > tpm then
      never = 1
    else
      local need = sum + tokens - tpm
      local entries = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
      for j = 1, #entries, 2 do
        need = need - (tonumber(redis.call('HGET', h, entries[j])) or 0)
        if need <= 0 then
          wait = math.max(wait, tonumber(entries[j + 1]) + period - now)
          break
        end
      end
    end
  end
  if refused and (limited == 0 or wait > retry) then
    retry, limited = math.max(wait, 1), i
  end
end
local out = {limited == 0 and 1 or 0, never, retry, limited}
local ttl = math.ceil(period / 1000) + 1000
for i = 1, n do
  local z, h = KEYS[2 * i - 1], KEYS[2 * i]
  local reset = period
  if limited == 0 then
    redis.call('ZADD', z, now, ticket)
    redis.call('HSET', h, ticket, tokens)
    redis.call('HINCRBY', h, '#sum', tokens)
    redis.call('PEXPIRE', z, ttl)
    redis.call('PEXPIRE', h, ttl)
    counts[i], sums[i] = counts[i] + 1, sums[i] + tokens
  else
    local newest = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
    reset = newest[2] and (tonumber(newest[2]) + period - now) or 0
  end
  out[#out + 1] = counts[i]
  out[#out + 1] = sums[i]
  out[#out + 1] = reset
end
return out
"""

_SETTLE = """
local actual = tonumber(ARGV[2])
for i = 1, #KEYS do
  local old = tonumber(redis.call('HGET', KEYS[i], ARGV[1]))
  if old then
    redis.call('HSET', KEYS[i], ARGV[1], actual)
    redis.call('HINCRBY', KEYS[i], '#sum', actual - old)
  end
end
return 0
"""


Call = tuple[Script, list[str], list[int | str]]  # a script with its keys and arguments

_CANCEL = """
for i = 1, #KEYS / 2 do
  local z, h = KEYS[2 * i - 1], KEYS[2 * i]
  local tokens = tonumber(redis.call('HGET', h, ARGV[1]))
  if tokens then
    redis.call('HDEL', h, ARGV[1])
    redis.call('HINCRBY', h, '#sum', -tokens)
    redis.call('ZREM', z, ARGV[1])
  end
end
return 0
"""


class Prepared:
    """One acquire's keys and arguments, to run alone or in a pipeline with other scripts."""

    __slots__ = ("args", "keys", "subjects", "ticket")

    def __init__(self, keys: list[str], args: list[int | str], subjects: tuple[Subject, ...], ticket: str) -> None:
        self.keys, self.args, self.subjects, self.ticket = keys, args, subjects, ticket


class RedisLimiter:
    """Limiter on Redis (`redis_url`): exact across processes; one round trip per acquire and settle."""

    def __init__(self, redis: RedisClient, prefix: str = "clawdbot:", period_s: float = PERIOD_S) -> None:
        self._redis = redis
        self._prefix = prefix
        self._period_us = int(period_s * 1_000_000)
        self._acquire = redis.register_script(_ACQUIRE)
        self._settle = redis.register_script(_SETTLE)
        self._cancel = redis.register_script(_CANCEL)

    def _keys(self, scope: str, sid: str) -> tuple[str, str]:
        base = f"{self._prefix}rl:{scope}:{sid}"
        return base + ":z", base + ":h"

    def prepare(self, subjects: Sequence[Subject], tokens_estimate: int) -> Prepared:
        subjects = unique(subjects)
        keys: list[str] = []
        ticket = new_ticket()
        args: list[int | str] = [self._period_us, ticket, max(1, tokens_estimate)]
        for scope, sid, rpm, tpm in subjects:
            keys.extend(self._keys(scope, sid))
            args.extend((rpm, tpm))
        return Prepared(keys, args, subjects, ticket)

    def acquire_call(self, prep: Prepared) -> Call:
        """The acquire as (script, keys, args), for a pipeline (tenancy/metering_redis.py)."""
        return self._acquire, prep.keys, prep.args

    @staticmethod
    def decide(prep: Prepared, result: Sequence[Any]) -> Decision:
        out = [int(v) for v in result]
        subjects = prep.subjects
        allowed, never, retry_us, limited = out[:4]
        usage = tuple(
            Usage(s[2], s[3], out[4 + 3 * i], out[5 + 3 * i], out[6 + 3 * i] / 1_000_000)
            for i, s in enumerate(subjects)
        )
        retry = math.inf if never else retry_us / 1_000_000
        limited_by = subjects[limited - 1] if limited else None
        return Decision(bool(allowed), 0.0 if allowed else retry, prep.ticket, subjects, usage, limited_by)

    async def acquire(self, subjects: Sequence[Subject], tokens_estimate: int) -> Decision:
        prep = self.prepare(subjects, tokens_estimate)
        return self.decide(prep, await self._acquire(keys=prep.keys, args=prep.args))

    def settle_call(self, decision: Decision, actual_tokens: int) -> Call | None:
        if not decision.allowed:
            return None
        keys = [self._keys(scope, sid)[1] for scope, sid, _, _ in decision.subjects]
        return self._settle, keys, [decision.ticket, max(1, actual_tokens)]

    async def settle(self, decision: Decision, actual_tokens: int) -> None:
        call = self.settle_call(decision, actual_tokens)
        if call is not None:
            await call[0](keys=call[1], args=call[2])

    async def cancel(self, decision: Decision) -> None:
        """Take back an admission whose request never ran (its budget refused it): as if refused."""
        if decision.allowed:
            keys = [k for scope, sid, _, _ in decision.subjects for k in self._keys(scope, sid)]
            await self._cancel(keys=keys, args=[decision.ticket])
