"""Logical connections: what outlives a socket so that a client can resume.

A connection numbers its events (`seq`, from 1, no gaps) and keeps the last `keep_events` of them.
Its socket may drop; the connection then waits `resume_seconds` for a `connect.resume` before it is
forgotten. Runs started on it keep emitting into its ring meanwhile (bounded), and are stored when
they end whatever happens to the connection."""

from __future__ import annotations

import asyncio
import hmac
import itertools
import os
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from clawdbot.web import frames
from clawdbot.web.auth import Principal
from clawdbot.web.outbox import Outbox

MAX_CONNECTIONS = 10_000  # logical connections held at once (attached or waiting for a resume)


class Connection:
    def __init__(self, principal: Principal, keep_events: int) -> None:
        self.id = "c_" + os.urandom(12).hex()
        self.resume_token = "r_" + os.urandom(24).hex()
        self.principal = principal
        self.seq = 0
        self._ring: deque[tuple[int, str]] = deque(maxlen=keep_events)
        self.outbox: Outbox | None = None
        self.expiry: asyncio.TimerHandle | None = None
        self._watch: asyncio.Task[None] | None = None

    def emit(self, event: str, payload: Any) -> None:
        # With redis_url a MirroredConnection (web/connections_redis.py) also copies it to Redis.
        self.seq += 1
        frame = frames.event(event, self.seq, payload).decode()
        self._ring.append((self.seq, frame))
        if self.outbox is not None and not self.outbox.push(frame):
            self.outbox = None

    def watch(self, name: str, payload: Callable[[], Awaitable[Any]], interval: float) -> None:
        """`name` events with `await payload()` now and every `interval` seconds, straight to the
        attached socket (frames.passing: not numbered, not kept), until unwatch(), the socket goes,
        or `payload` answers None (the caller may no longer watch)."""
        self.unwatch()
        self._watch = asyncio.get_running_loop().create_task(self._watching(name, payload, interval))

    async def _watching(self, name: str, payload: Callable[[], Awaitable[Any]], interval: float) -> None:
        while True:
            data = await payload()
            outbox = self.outbox
            if data is None or outbox is None or not outbox.push(frames.passing(name, data).decode()):
                self._watch = None
                return
            await asyncio.sleep(interval)

    def unwatch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def since(self, last_seq: int) -> list[str] | None:
        """The events after `last_seq`, or None when some of them are no longer held."""
        if last_seq < 0 or last_seq > self.seq:
            return None
        if last_seq == self.seq:
            return []
        if not self._ring or self._ring[0][0] > last_seq + 1:
            return None
        return [f for _, f in itertools.islice(self._ring, last_seq + 1 - self._ring[0][0], None)]

    def end_seen(self, run_id: str) -> asyncio.Future[None] | None:
        """Resolved once the socket has been sent the run's last event, when that happens later than
        the event is emitted (a moved connection, web/connections_redis.py); None: at once."""
        return None

    def end_forgotten(self, run_id: str) -> None:
        return None

    def token_matches(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.resume_token.encode())


class Connections:
    def __init__(self, resume_seconds: float, keep_events: int, max_connections: int = MAX_CONNECTIONS) -> None:
        self.resume_seconds = resume_seconds
        self.keep_events = keep_events
        self.max_connections = max_connections
        self._conns: dict[str, Connection] = {}

    def open(self, principal: Principal) -> Connection | None:
        """A new logical connection; None when the table is full of attached ones."""
        if len(self._conns) >= self.max_connections and not self._evict_detached():
            return None
        conn = self._new(principal)
        self._conns[conn.id] = conn
        return conn

    def _new(self, principal: Principal) -> Connection:
        return Connection(principal, self.keep_events)

    def _evict_detached(self) -> bool:
        for conn in self._conns.values():  # oldest first
            if conn.outbox is None:
                self.drop(conn)
                return True
        return False

    def find(self, conn_id: str) -> Connection | None:
        return self._conns.get(conn_id)

    def attach(self, conn: Connection, outbox: Outbox) -> None:
        if conn.expiry is not None:
            conn.expiry.cancel()
            conn.expiry = None
        old = conn.outbox
        if old is not None and old is not outbox:
            # The client resumed on a new socket while the server still held the old one (a
            # half-open TCP connection): the old socket is over.
            old.cut()
        conn.outbox = outbox

    def detach(self, conn: Connection, outbox: Outbox) -> None:
        if conn.outbox is not None and conn.outbox is not outbox:
            return  # already resumed elsewhere
        conn.outbox = None
        conn.unwatch()  # a watch belongs to a socket: a resumed client asks again
        if conn.id not in self._conns:
            return
        if self.resume_seconds <= 0:
            self.drop(conn)
            return
        loop = asyncio.get_running_loop()
        conn.expiry = loop.call_later(self.resume_seconds, self._expire, conn)

    def _expire(self, conn: Connection) -> None:
        conn.expiry = None
        if conn.outbox is None:
            self._conns.pop(conn.id, None)

    def drop(self, conn: Connection) -> None:
        conn.unwatch()
        if conn.expiry is not None:
            conn.expiry.cancel()
            conn.expiry = None
        self._conns.pop(conn.id, None)

    def close(self) -> None:
        for conn in list(self._conns.values()):
            self.drop(conn)

    def __len__(self) -> int:
        return len(self._conns)
