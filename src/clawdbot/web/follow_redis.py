"""Reading a moved connection's event stream (web/outbox_redis.py) for the socket that resumed it:
the replay after the client's last seq (XRANGE), then the live events (XREAD BLOCK) until the
socket closes.

A blocking read holds its connection, so each follower has a Redis connection of its own (the
process's shared one must never block); followers per worker are bounded (MAX_FOLLOWERS). Every
event is checked to follow the one before (no gap: the mirror may have dropped a batch while Redis
failed); a gap, a control entry naming a later socket (the client resumed again elsewhere), keys
that expired, or a Redis that fails all end the socket. Its client then resumes, or starts afresh
and reloads the session's messages, as when a connection expires."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Protocol

from clawdbot.state.redis_lean import LeanRedis, ReplyError
from clawdbot.web.outbox_redis import Mirrored

if TYPE_CHECKING:
    from clawdbot.web.outbox import Outbox
    from clawdbot.web.outbox_redis import RedisOutbox

log = logging.getLogger("clawdbot.web")


class Followed(Mirrored, Protocol):
    """What a follower needs of the connection it reads for (web/connections_redis.py
    Followed, which builds on this module: hence a protocol here, not an import)."""

    end_waiters: dict[str, asyncio.Future[None]]

    def passed(self, frame: str) -> None: ...

MAX_FOLLOWERS = 512  # sockets per worker reading a connection that moved to them
BLOCK_MS = 5000  # one XREAD's wait; then the keys' expiry is pushed back (a socket reads them)
READ_COUNT = 512  # entries per read


class Gap(Exception):
    """An event is missing from the stream: the resume cannot be exact."""


class Superseded(Exception):
    """A later socket resumed the connection."""


class Reading:
    """Where a reader is in one stream: the next seq it expects, the last entry id, and whether it
    has passed its own control entry (those before it name earlier readers)."""

    def __init__(self, last_seq: int, window: str) -> None:
        self.expect = last_seq + 1
        self.last_id = f"{last_seq}-0"
        self.window = window.encode()
        self.mine_seen = False

    def frames(self, entries: list[Any]) -> list[str]:
        """The frames among `entries` ([id, [field, value, ...]]); raises Gap or Superseded."""
        out: list[str] = []
        for entry_id, fields in entries:
            self.last_id = entry_id.decode()
            seq_text, _, sub = self.last_id.partition("-")
            data = dict(zip(fields[::2], fields[1::2], strict=True))
            if sub != "0":  # a control entry: which socket reads the connection from here on
                window = data.get(b"window")
                if window == self.window:
                    self.mine_seen = True
                elif self.mine_seen:
                    raise Superseded()
                continue
            seq = int(seq_text)
            if seq < self.expect:
                continue  # seen by the client already
            if seq != self.expect or b"f" not in data:
                raise Gap()
            self.expect += 1
            out.append(data[b"f"].decode())
        return out


async def replay(mirror: RedisOutbox, conn_id: str, reading: Reading, limit: int) -> list[str]:
    """The events after the client's last seq that the stream holds (at most `limit` + a margin; the
    follower reads the rest). Raises Gap, Superseded, OSError or TimeoutError."""
    _, stream = mirror.keys(conn_id)
    [reply] = await mirror.client.lean.execute([("XRANGE", stream, f"({reading.last_id}", "+",
                                                 "COUNT", limit + 64)])
    if isinstance(reply, ReplyError):
        raise ConnectionError(f"Redis refused XRANGE: {reply}")
    return reading.frames(reply)


class Follower:
    """Live events of a moved connection to the socket that resumed it."""

    def __init__(self, mirror: RedisOutbox, conn: Followed, outbox: Outbox, reading: Reading) -> None:
        self.mirror = mirror
        self.conn = conn
        self.outbox = outbox
        self.reading = reading
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ws follow {self.conn.id}")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        mirror = self.mirror
        redis = mirror.blocking_connection(BLOCK_MS / 1000)
        try:
            await self._follow(redis)
        except Gap:
            log.warning("connection %s: an event is missing from Redis; its socket is closed", self.conn.id)
        except Superseded:
            pass  # resumed on another socket: this one is over
        except (OSError, TimeoutError) as exc:
            log.warning("connection %s: cannot read its events from Redis (%s: %s); its socket is closed",
                        self.conn.id, type(exc).__name__, exc)
        finally:
            mirror.followers.discard(self)
            self.outbox.cut()
            with contextlib.suppress(Exception):
                await redis.close()

    async def _follow(self, redis: LeanRedis) -> None:
        meta, stream = self.mirror.keys(self.conn.id)
        reading = self.reading
        while not self.outbox.closed:
            [reply] = await redis.execute([("XREAD", "COUNT", READ_COUNT, "BLOCK", BLOCK_MS, "STREAMS", stream,
                                            reading.last_id)])
            if isinstance(reply, ReplyError):
                raise ConnectionError(f"Redis refused XREAD: {reply}")
            if reply is None:  # nothing for a while: the socket is still reading, keep the keys
                kept = await redis.execute([("PEXPIRE", meta, self.mirror.ttl(self.conn)),
                                            ("PEXPIRE", stream, self.mirror.ttl(self.conn))])
                if kept[0] != 1:
                    log.info("connection %s expired in Redis; its socket is closed", self.conn.id)
                    return
                continue
            for frame in reading.frames(reply[0][1]):
                if not self.outbox.push(frame):
                    return
                if self.conn.end_waiters:
                    self.conn.passed(frame)
