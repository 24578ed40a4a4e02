"""The Redis commands clawdbot uses, on the lean connection (state/redis_lean.py): what the stores
of limits, budgets, breakers, key invalidation and the shared caches call. The names and return
values follow redis-py's (bytes, never decoded; `set` True; `hgetall` a dict), so the stores read
as Redis code does anywhere.

    client = RedisClient.from_url(url)
    await client.get(name); await client.set(name, value, px=ms)
    script = client.register_script(lua); await script(keys=[...], args=[...])
    async with client.pipeline() as pipe: pipe.hset(...); pipe.publish(...); await pipe.execute()
    sub = client.pubsub(); await sub.subscribe(channel); await sub.get_message(within=1.0)

Error replies raise ResponseError (NoScriptError for NOSCRIPT); a Redis that cannot be reached
or does not answer raises ConnectionError or TimeoutError."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from clawdbot.state.redis_lean import LeanRedis, ReplyError, Subscriber

Key = str | bytes


class RedisError(Exception):
    pass


class ResponseError(RedisError):
    """Redis answered a command with an error."""


class NoScriptError(ResponseError):
    """EVALSHA of a script this Redis does not hold (first use, or Redis restarted)."""


def _raise(reply: Any) -> Any:
    if isinstance(reply, ReplyError):
        text = str(reply)
        raise (NoScriptError if text.startswith("NOSCRIPT") else ResponseError)(text)
    return reply


def _error(reply: Any) -> Any:
    """An error reply as the exception it stands for (a pipeline's raise_on_error=False)."""
    if isinstance(reply, ReplyError):
        text = str(reply)
        return (NoScriptError if text.startswith("NOSCRIPT") else ResponseError)(text)
    return reply


class Script:
    """A Lua script: run with EVALSHA; one Redis does not hold yet is loaded and run again."""

    def __init__(self, client: RedisClient, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        lean = self.client.lean
        [reply] = await lean.execute([("EVALSHA", self.sha, len(keys), *keys, *args)])
        if isinstance(reply, ReplyError) and str(reply).startswith("NOSCRIPT"):
            # its NOSCRIPT answer means it did nothing: load it, run it (one round trip)
            _, reply = await lean.execute([("SCRIPT", "LOAD", self.source),
                                           ("EVALSHA", self.sha, len(keys), *keys, *args)])
        return _raise(reply)


class Pipeline:
    """Commands sent together (no MULTI: redis-py's transaction=False), replies in order."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self.commands: list[tuple[Any, ...]] = []

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.commands.clear()

    def execute_command(self, *args: Any) -> Pipeline:
        self.commands.append(args)
        return self

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Pipeline:
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    def hset(self, name: Key, key: Key, value: Any) -> Pipeline:
        return self.execute_command("HSET", name, key, value)

    def publish(self, channel: Key, message: Any) -> Pipeline:
        return self.execute_command("PUBLISH", channel, message)

    def expire(self, name: Key, seconds: int) -> Pipeline:
        return self.execute_command("EXPIRE", name, seconds)

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        commands, self.commands = self.commands, []
        if not commands:
            return []
        replies = await self.client.lean.execute(commands)
        if raise_on_error:
            return [_raise(r) for r in replies]
        return [_error(r) for r in replies]


class PubSub:
    """One subscriber connection. `get_message` gives redis-py's message dicts
    ({"type": "message" | "subscribe" | "pong", "channel": bytes, "data": ...}) or None."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self._sub: Subscriber | None = None

    async def subscribe(self, *channels: str) -> None:
        if self._sub is None:
            self._sub = await self.client.lean.subscriber()
        self._sub.send("SUBSCRIBE", *channels)

    async def ping(self) -> None:
        if self._sub is None:
            raise ConnectionError("not subscribed")
        self._sub.send("PING")

    async def get_message(self, within: float = 0.0) -> dict[str, Any] | None:
        if self._sub is None:
            raise ConnectionError("not subscribed")
        reply = await self._sub.next(within)
        if reply is None:
            return None
        if isinstance(reply, ReplyError):
            raise ResponseError(str(reply))
        if isinstance(reply, list) and reply and isinstance(reply[0], bytes):
            kind = reply[0].decode()
            if kind == "pong":  # PING in subscribed mode: [b"pong", b""]
                return {"type": "pong", "channel": None, "data": reply[1] if len(reply) > 1 else b""}
            return {"type": kind, "channel": reply[1] if len(reply) > 1 else None,
                    "data": reply[2] if len(reply) > 2 else None}
        raise ResponseError("Redis sent a reply a subscriber does not expect")

    async def aclose(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            sub.close()


class RedisClient:
    def __init__(self, lean: LeanRedis) -> None:
        self.lean = lean

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 5.0, client_name: str | None = None) -> RedisClient:
        """Raises ValueError for a URL it cannot use (the message never repeats it)."""
        return cls(LeanRedis.from_url(url, timeout, client_name))

    async def execute_command(self, *args: Any) -> Any:
        [reply] = await self.lean.execute([args])
        return _raise(reply)

    async def ping(self) -> bool:
        return bool(await self.execute_command("PING") == b"PONG")

    async def get(self, name: Key) -> bytes | None:
        out: bytes | None = await self.execute_command("GET", name)
        return out

    async def set(self, name: Key, value: Any, px: int | None = None) -> bool:
        args: tuple[Any, ...] = ("SET", name, value) if px is None else ("SET", name, value, "PX", px)
        return bool(await self.execute_command(*args) == b"OK")

    async def hget(self, name: Key, key: Key) -> bytes | None:
        out: bytes | None = await self.execute_command("HGET", name, key)
        return out

    async def hmget(self, name: Key, keys: Sequence[Key]) -> list[bytes | None]:
        return list(await self.execute_command("HMGET", name, *keys))

    async def hsetnx(self, name: Key, key: Key, value: Any) -> bool:
        return bool(await self.execute_command("HSETNX", name, key, value))

    async def pexpire(self, name: Key, ms: int) -> bool:
        return bool(await self.execute_command("PEXPIRE", name, ms))

    async def hgetall(self, name: Key) -> dict[bytes, bytes]:
        flat = await self.execute_command("HGETALL", name)
        return dict(zip(flat[::2], flat[1::2], strict=True))

    async def zrangebyscore(self, name: Key, low: Any, high: Any) -> list[bytes]:
        return list(await self.execute_command("ZRANGEBYSCORE", name, low, high))

    async def publish(self, channel: Key, message: Any) -> int:
        return int(await self.execute_command("PUBLISH", channel, message))

    def register_script(self, source: str) -> Script:
        return Script(self, source)

    def pipeline(self, transaction: bool = False) -> Pipeline:
        assert not transaction, "MULTI/EXEC is not used"
        return Pipeline(self)

    def pubsub(self) -> PubSub:
        return PubSub(self)

    async def aclose(self, close_connection_pool: bool = True) -> None:
        await self.lean.close()
