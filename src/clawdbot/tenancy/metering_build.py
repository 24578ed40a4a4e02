"""Metering for a process, from the Config: in-process limits and budgets, or Redis ones with
`redis_url` (shared by every replica); spend records to the SQL spend table through a journal in
the data directory, when there is a database for virtual keys."""

from __future__ import annotations

from collections.abc import Mapping

from clawdbot.config.schema import Config
from clawdbot.state.build import data_dir
from clawdbot.state.redis import redis_client, redis_prefix, redis_url
from clawdbot.tenancy.budgets import Budgets, MemoryBudgets
from clawdbot.tenancy.journal import Journal
from clawdbot.tenancy.limits import Limiter, MemoryLimiter
from clawdbot.tenancy.metering import Metering
from clawdbot.tenancy.service import Tenancy
from clawdbot.tenancy.spend import SpendWriter

MIB = 1024 * 1024


def build_metering(config: Config, env: Mapping[str, str], tenancy: Tenancy) -> Metering:
    limiter: Limiter
    budgets: Budgets
    url = redis_url(config, env)
    closing = None
    joint = None
    if url:
        from clawdbot.tenancy.budgets_redis import RedisBudgets
        from clawdbot.tenancy.limits_redis import RedisLimiter
        from clawdbot.tenancy.metering_redis import RedisMetering

        client = redis_client(url)
        prefix = redis_prefix(config, env)
        shared_limiter, shared_budgets = RedisLimiter(client, prefix), RedisBudgets(client, prefix)
        limiter, budgets = shared_limiter, shared_budgets
        joint = RedisMetering(client, shared_limiter, shared_budgets)

        async def closing() -> None:
            assert joint is not None
            await joint.close()
            await client.aclose()
    else:
        limiter, budgets = MemoryLimiter(), MemoryBudgets()
    writer = seed = None
    spend = tenancy.spend
    if spend is not None:
        journal = Journal(data_dir(config, env), max_bytes=config.metering.journal_max_mb * MIB)
        writer = SpendWriter(spend.write, journal, flush_interval_s=config.metering.flush_interval)
        seed = spend.spent
    metering = Metering(config, limiter, budgets, writer, seed, closing=closing, joint=joint)
    if url:  # a new subscription may follow a Redis restart that lost the budgets' counts
        tenancy.invalidation.on_reconnect(metering.reseed)
    return metering
