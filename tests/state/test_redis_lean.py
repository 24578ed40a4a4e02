"""The lean pipelined Redis connection (state/redis_lean.py) against the real Redis: replies reach
the commands that asked, across concurrent callers, cancellations and reconnects."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import tempfile
import uuid

import pytest

from clawdbot.state.redis_lean import LeanRedis, ReplyError, Target
from tests.e2e.harness import closed_port

URL = os.environ.get("CLAWDBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def test_concurrent_callers_each_get_their_own_replies() -> None:
    async def body() -> None:
        r = LeanRedis.from_url(URL)
        prefix = f"lean-test:{uuid.uuid4().hex}:"

        async def one(i: int) -> None:
            out = await r.execute([("SET", f"{prefix}{i}", i), ("INCRBY", f"{prefix}{i}", i), ("GET", f"{prefix}{i}")])
            assert out == [b"OK", 2 * i, str(2 * i).encode()]

        await asyncio.gather(*(one(i) for i in range(200)))
        keys = [f"{prefix}{i}" for i in range(200)]
        assert await r.execute([("DEL", *keys)]) == [200]
        await r.close()

    asyncio.run(body())


def test_error_replies_are_values_and_the_stream_stays_in_step() -> None:
    async def body() -> None:
        r = LeanRedis.from_url(URL)
        out = await r.execute([("EVALSHA", "0" * 40, 0), ("PING",)])
        assert isinstance(out[0], ReplyError) and str(out[0]).startswith("NOSCRIPT") and out[1] == b"PONG"
        await r.close()

    asyncio.run(body())


def test_a_cancelled_caller_does_not_shift_the_replies_of_the_next() -> None:
    async def body() -> None:
        r = LeanRedis.from_url(URL)
        key = f"lean-test:{uuid.uuid4().hex}"
        slow = asyncio.ensure_future(r.execute([("BLPOP", key, 0.2)]))  # blocks Redis' reply for 0.2 s
        await asyncio.sleep(0)  # let it queue its command (not a synchronisation on time)
        slow.cancel()
        assert await r.execute([("ECHO", "mine")]) == [b"mine"]  # after the BLPOP's nil reply, in order
        await r.close()

    asyncio.run(body())


def test_unreachable_redis_is_a_connection_error_and_a_later_call_reconnects() -> None:
    async def body() -> None:
        down = LeanRedis("127.0.0.1", closed_port(), timeout=1.0)
        with pytest.raises(OSError):
            await down.execute([("PING",)])
        r = LeanRedis.from_url(URL)
        assert await r.execute([("PING",)]) == [b"PONG"]
        assert r._proto is not None and r._proto.transport is not None
        r._proto.transport.abort()  # the connection went away
        assert await r.execute([("PING",)]) == [b"PONG"]
        await r.close()

    asyncio.run(body())


def test_urls_tls_unix_and_refusals() -> None:
    t = Target.from_url("redis://user:p%40ss@h:6390/3")
    assert (t.host, t.port, t.db, t.username, t.password, t.ssl) == ("h", 6390, 3, "user", "p@ss", None)
    t = Target.from_url("rediss://h:6380/0?ssl_cert_reqs=none")
    assert t.ssl is not None and t.ssl.verify_mode == ssl.CERT_NONE and t.port == 6380
    assert Target.from_url("rediss://h/0").ssl is not None
    t = Target.from_url("unix:///run/redis.sock?db=2")
    assert (t.path, t.db, t.host) == ("/run/redis.sock", 2, None)
    for bad in ("http://h:6379/0", "redis://h:6379/zero", "redis://h:notaport/0", "unix://"):
        with pytest.raises(ValueError) as err:
            Target.from_url(bad)
        assert "h:notaport" not in str(err.value)


def test_a_unix_socket_and_a_client_name() -> None:
    """The real Redis on a unix socket of its own (a second redis-server started for this test),
    and the connection named as asked (CLIENT SETNAME: an operator finds it in CLIENT LIST)."""
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "redis.sock")
        argv = ["redis-server", "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no"]
        server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            async def body() -> None:
                r = LeanRedis.from_url(f"unix://{sock}?db=1", client_name="clawdbot-test-name")
                for _ in range(200):  # the server creates its socket as it starts: bounded retries
                    try:
                        assert await r.execute([("PING",)]) == [b"PONG"]
                        break
                    except OSError:
                        await asyncio.sleep(0.02)
                [name, db] = await r.execute([("CLIENT", "GETNAME"), ("CLIENT", "INFO")])
                assert name == b"clawdbot-test-name" and b" db=1 " in db
                await r.close()

            asyncio.run(body())
        finally:
            server.terminate()
            server.wait(timeout=10)
