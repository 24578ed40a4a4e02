"""Access rules (mcp/access.py) and the per-key call limits (mcp/limits.py), without processes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from clawdbot.config.mcp_schema import Mcp, McpAccessRule
from clawdbot.mcp.access import Access
from clawdbot.mcp.limits import CallLimits, Unreachable
from clawdbot.tenancy.limits import Decision, MemoryLimiter, Subject
from clawdbot.tenancy.principal import ANONYMOUS, Principal

KEY = Principal(kind="key", key_id="k_1", user_id="u_1", team_id="t_1")
OTHER = Principal(kind="key", key_id="k_2", user_id="u_2", team_id="t_2")
MASTER = Principal(kind="master")


def access(*rules: McpAccessRule) -> Access:
    return Access(Mcp(access=list(rules)))


def test_a_key_sees_only_what_a_rule_allows_and_none_denies() -> None:
    a = access(McpAccessRule(teams=["t_1"], allow=["time", "fs.read_*"], deny=["time.convert_*"]),
               McpAccessRule(keys=["k_2"], allow=["*"]))
    g = a.grant(KEY)
    assert g.tool("time", "get_current_time") and not g.tool("time", "convert_time")
    assert g.tool("fs", "read_file") and not g.tool("fs", "write_file") and not g.tool("shell", "run")
    assert g.server("fs") and not g.server("shell")
    assert a.grant(OTHER).tool("shell", "run")


def test_secure_by_default_for_keys_open_for_the_master_key() -> None:
    a = access()
    assert not a.grant(KEY).tool("time", "get_current_time") and not a.grant(KEY).server("time")
    assert a.grant(MASTER).tool("time", "get_current_time") and a.grant(ANONYMOUS).tool("x", "y")
    denied = access(McpAccessRule(keys=["master"], deny=["shell"], calls_per_minute=5))
    assert not denied.grant(MASTER).tool("shell", "run") and denied.grant(MASTER).calls_per_minute == 5
    assert not denied.grant(MASTER).server("shell")


def test_the_tightest_limit_wins() -> None:
    a = access(McpAccessRule(calls_per_minute=100, max_result_bytes=10), McpAccessRule(users=["u_1"],
                                                                                       calls_per_minute=3))
    g = a.grant(KEY)
    assert (g.calls_per_minute, g.max_result_bytes) == (3, 10)
    assert a.grant(OTHER).calls_per_minute == 100


def test_calls_per_minute_per_key_in_the_tenancy_limiter() -> None:
    now = [0.0]
    limiter = MemoryLimiter(clock=lambda: now[0])
    c = CallLimits(limiter)

    async def run() -> None:
        assert [await c.admit("a", 2) for _ in range(3)] == [0, 0, 60]
        now[0] = 30.0
        assert await c.admit("a", 2) == 30 and await c.admit("b", 2) == 0
        now[0] = 60.5
        assert [await c.admit("a", 2) for _ in range(3)] == [0, 0, 60]  # a sliding window: both left it

    asyncio.run(run())
    assert {k for k, _ in limiter._windows} == {"mcp"}  # apart from /v1's "key" subjects


class Down:
    async def acquire(self, subjects: Sequence[Subject], tokens_estimate: int) -> Decision:
        raise ConnectionError("Redis is unreachable")

    async def settle(self, decision: Decision, actual_tokens: int) -> None:
        raise AssertionError("never admitted")


def test_an_unreachable_count_refuses_the_call() -> None:
    with pytest.raises(Unreachable):
        asyncio.run(CallLimits(Down()).admit("a", 2))
