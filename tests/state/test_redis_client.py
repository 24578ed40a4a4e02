"""The gateway's Redis commands (state/redis_client.py) against the real Redis: replies shaped as
the stores expect them, scripts that survive a Redis that forgot them, pipelines, pub/sub with its
confirmations, pings and a lost connection."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis

from clawdbot.state.redis import redis_client
from clawdbot.state.redis_client import NoScriptError, ResponseError
from tests.e2e.harness import closed_port
from tests.tenancy.redis_support import REDIS_URL, fresh_prefix

INCR = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


def test_commands_answer_as_the_stores_expect() -> None:
    with fresh_prefix() as p:
        async def body() -> None:
            c = redis_client(REDIS_URL)
            assert await c.ping() is True
            assert await c.set(p + "s", b"v", px=60_000) is True and await c.get(p + "s") == b"v"
            assert await c.get(p + "missing") is None
            assert await c.hsetnx(p + "h", "a", 1) is True and await c.hsetnx(p + "h", "a", 2) is False
            assert await c.pexpire(p + "h", 60_000) is True and await c.pexpire(p + "none", 1000) is False
            assert await c.hget(p + "h", "a") == b"1" and await c.hmget(p + "h", ["a", "b"]) == [b"1", None]
            assert await c.hgetall(p + "h") == {b"a": b"1"} and await c.hgetall(p + "none") == {}
            await c.execute_command("ZADD", p + "z", 1, "one", 2, "two")
            assert await c.zrangebyscore(p + "z", "(1", "+inf") == [b"two"]
            assert await c.publish(p + "nobody", b"x") == 0
            with pytest.raises(ResponseError):
                await c.hget(p + "s", "a")  # WRONGTYPE: a string is not a hash
            await c.aclose()

        asyncio.run(body())


def test_a_script_runs_again_after_redis_forgot_it() -> None:
    with fresh_prefix() as p:
        async def body() -> None:
            c = redis_client(REDIS_URL)
            script = c.register_script(INCR)
            assert await script(keys=[p + "n"], args=[2]) == 2
            redis.Redis.from_url(REDIS_URL).script_flush()  # a restarted Redis holds no scripts
            assert await script(keys=[p + "n"], args=[3]) == 5
            async with c.pipeline() as pipe:
                pipe.evalsha(script.sha, 1, p + "n", 1)
                pipe.evalsha("0" * 40, 0)
                first, second = await pipe.execute(raise_on_error=False)
            assert first == 6 and isinstance(second, NoScriptError)
            pipe = c.pipeline()
            pipe.evalsha("0" * 40, 0)
            with pytest.raises(NoScriptError):
                await pipe.execute()
            await c.aclose()

        asyncio.run(body())


def test_pubsub_confirms_delivers_pongs_and_reports_a_lost_connection() -> None:
    channel = f"clawdbot-test:{uuid.uuid4().hex}"
    name = f"clawdbot-sub-{uuid.uuid4().hex[:8]}"

    async def body() -> None:
        sub_client, pub = redis_client(REDIS_URL, client_name=name), redis_client(REDIS_URL)
        sub = sub_client.pubsub()
        await sub.subscribe(channel)
        confirmed = await sub.get_message(within=5)
        assert confirmed is not None and confirmed["type"] == "subscribe" and confirmed["channel"] == channel.encode()
        assert await sub.get_message(within=0.01) is None  # nothing yet
        assert await pub.publish(channel, b"hello") == 1
        msg = await sub.get_message(within=5)
        assert msg == {"type": "message", "channel": channel.encode(), "data": b"hello"}
        await sub.ping()
        pong = await sub.get_message(within=5)
        assert pong is not None and pong["type"] == "pong"
        admin = redis.Redis.from_url(REDIS_URL)
        [mine] = [c["id"] for c in admin.client_list() if c["name"] == name]  # the subscriber, by its name
        admin.client_kill_filter(_id=mine)  # the server drops it
        with pytest.raises(ConnectionError):
            await sub.get_message(within=5)
        with pytest.raises(ConnectionError):
            await sub.ping()
        await sub.aclose()
        await pub.aclose()

    asyncio.run(body())


def test_an_unreachable_redis_is_a_connection_error() -> None:
    async def body() -> None:
        c = redis_client(f"redis://127.0.0.1:{closed_port()}/0")
        with pytest.raises(OSError):
            await c.get("x")
        with pytest.raises(OSError):
            await c.pubsub().subscribe("x")

    asyncio.run(body())


def test_a_bad_url_is_refused_without_repeating_it() -> None:
    with pytest.raises(ValueError) as err:
        redis_client("redis://user:hunter2@h:notaport/0")
    assert "hunter2" not in str(err.value)
