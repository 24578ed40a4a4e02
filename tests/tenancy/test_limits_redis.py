from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import textwrap

from clawdbot.state.redis_client import RedisClient
from clawdbot.tenancy.limits import Decision, Subject
from clawdbot.tenancy.limits_redis import RedisLimiter

from .redis_support import REDIS_URL, async_client, fresh_prefix

HOUR = 3600.0  # a long period: nothing leaves the window while a test runs


async def _with_limiter(prefix: str, period_s: float = HOUR) -> tuple[RedisClient, RedisLimiter]:
    client = async_client()
    return client, RedisLimiter(client, prefix=prefix, period_s=period_s)


def test_rpm_all_or_nothing_and_headers() -> None:
    with fresh_prefix() as redis_prefix:
        _check_rpm_all_or_nothing_and_headers(redis_prefix)


def _check_rpm_all_or_nothing_and_headers(redis_prefix: str) -> None:
    async def main() -> None:
        client, lim = await _with_limiter(redis_prefix, period_s=60)
        try:
            team, model = ("team", "t", 10, 0), ("model", "m", 2, 0)
            first = await lim.acquire([team, model], 1)
            assert first.allowed and first.headers["x-ratelimit-remaining-requests"] == "1"
            assert first.headers["x-ratelimit-reset-requests"] == "1m0s"
            assert (await lim.acquire([team, model], 1)).allowed
            refused = await lim.acquire([team, model], 1)
            assert not refused.allowed and refused.limited_by == model
            assert 59 < refused.retry_after_s <= 60
            assert refused.headers["x-ratelimit-remaining-requests"] == "0"
            d = await lim.acquire([team], 1)
            assert d.allowed and d.usage[0].requests == 3  # the refusal wrote nothing
        finally:
            await client.aclose()

    asyncio.run(main())


def test_tpm_settle_and_impossible_request() -> None:
    with fresh_prefix() as redis_prefix:
        _check_tpm_settle_and_impossible_request(redis_prefix)


def _check_tpm_settle_and_impossible_request(redis_prefix: str) -> None:
    async def main() -> None:
        client, lim = await _with_limiter(redis_prefix)
        try:
            user = ("user", "u", 0, 1000)
            first = await lim.acquire([user], 800)
            assert first.allowed
            assert not (await lim.acquire([user], 300)).allowed
            await lim.settle(first, 100)
            d = await lim.acquire([user], 300)
            assert d.allowed and d.usage[0].tokens == 400
            await lim.settle(d, 850)
            refused = await lim.acquire([user], 100)
            assert not refused.allowed and refused.usage[0].tokens == 950
            never = await lim.acquire([user], 1001)
            assert not never.allowed and never.retry_after_s == math.inf
        finally:
            await client.aclose()

    asyncio.run(main())


def test_concurrent_acquires_in_one_process_are_exact() -> None:
    with fresh_prefix() as redis_prefix:
        _check_concurrent_acquires_in_one_process_are_exact(redis_prefix)


def _check_concurrent_acquires_in_one_process_are_exact(redis_prefix: str) -> None:
    async def main() -> None:
        client, lim = await _with_limiter(redis_prefix)
        try:
            subject: Subject = ("key", "k", 37, 0)
            results: list[Decision] = await asyncio.gather(*(lim.acquire([subject], 1) for _ in range(120)))
            assert sum(d.allowed for d in results) == 37
        finally:
            await client.aclose()

    asyncio.run(main())


_HAMMER = textwrap.dedent(
    """
    import asyncio, sys
    from clawdbot.state.redis import redis_client
    from clawdbot.tenancy.limits_redis import RedisLimiter

    async def main():
        client = redis_client(sys.argv[1])
        lim = RedisLimiter(client, prefix=sys.argv[2], period_s=3600)
        subject = ("key", "shared", int(sys.argv[3]), 0)
        allowed = 0
        for _ in range(10):
            batch = await asyncio.gather(*(lim.acquire([subject], 1) for _ in range(20)))
            allowed += sum(d.allowed for d in batch)
        await client.aclose()
        print(allowed)

    asyncio.run(main())
    """
)


def test_exact_across_two_os_processes() -> None:
    with fresh_prefix() as redis_prefix:
        _check_exact_across_two_os_processes(redis_prefix)


def _check_exact_across_two_os_processes(redis_prefix: str) -> None:
    limit = 150  # each process tries 200: together they ask for 400
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _HAMMER, REDIS_URL, redis_prefix, str(limit)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(2)
    ]
    counts = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        counts.append(int(out))
    assert sum(counts) == limit
