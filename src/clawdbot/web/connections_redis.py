"""Logical connections whose events are also in Redis (`redis_url`, web/outbox_redis.py), so that
`connect.resume` works on any worker or replica sharing that Redis.

A connection is *local* while the worker that opened it numbers its events (the socket gets each
frame at once, the mirror follows), and *moved* once a socket elsewhere resumed it (Redis numbers
its events; that socket reads them from the stream, web/follow_redis.py). A resume asks Redis
first wherever it lands (RESUME): on the worker that numbers the connection it is the in-memory
resume of web/connections.py; on another it takes the connection over. When Redis does not answer,
the in-memory resume is all there is (as with one process)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

from clawdbot.web import frames
from clawdbot.web.auth import Principal
from clawdbot.web.connections import Connection, Connections
from clawdbot.web.follow_redis import MAX_FOLLOWERS, Follower, Gap, Reading, Superseded, replay
from clawdbot.web.frames import WsError
from clawdbot.web.outbox import Outbox
from clawdbot.web.outbox_redis import SCRIPTS, RedisOutbox, token_hash

log = logging.getLogger("clawdbot.web")
BEHIND_WAIT_S = 2.0  # how long a resume waits for the mirror to catch up with what the client saw
TERMINAL = ("final", "error", "aborted")


class MirroredConnection(Connection):
    def __init__(self, principal: Principal, keep_events: int, mirror: RedisOutbox) -> None:
        super().__init__(principal, keep_events)
        self.mirror = mirror
        self.token_hash = token_hash(self.resume_token)
        self.moved = False
        self.forgotten = False  # gone from Redis: nothing more is written
        self.window: str | None = None  # moved, and read by a socket here: its mark in the stream
        self.follower: Follower | None = None
        self.end_waiters: dict[str, asyncio.Future[None]] = {}  # run ids whose last event a caller awaits

    def emit(self, event: str, payload: Any) -> None:
        head, tail = frames.event_parts(event, payload)
        if self.moved:
            if not self.forgotten:
                self.mirror.add(self, 0, head, tail)
            return
        self.seq += 1
        frame = f"{head}{self.seq}{tail}"
        self._ring.append((self.seq, frame))
        if self.outbox is not None and not self.outbox.push(frame):
            self.outbox = None
        if not self.forgotten:
            self.mirror.add(self, self.seq, head, tail)

    def moved_away(self) -> None:
        """A socket on another worker resumed it: its events are numbered in Redis from now on."""
        self.moved = True
        self._ring.clear()
        self.unwatch()
        if self.outbox is not None:  # a half-open socket here: the client is elsewhere now
            self.outbox.cut()
            self.outbox = None

    def follow(self, outbox: Outbox, reading: Reading) -> None:
        self.unfollow()
        self.follower = Follower(self.mirror, self, outbox, reading)
        self.mirror.followers.add(self.follower)
        self.follower.start()

    def unfollow(self) -> None:
        if self.follower is not None:
            self.follower.stop()
            self.mirror.followers.discard(self.follower)
            self.follower = None

    def end_seen(self, run_id: str) -> asyncio.Future[None] | None:
        """Resolved when the follower has sent the run's last event to the socket."""
        if self.follower is None:
            return None
        fut = self.end_waiters.get(run_id)
        if fut is None:
            self.end_waiters[run_id] = fut = asyncio.get_running_loop().create_future()
        return fut

    def end_forgotten(self, run_id: str) -> None:
        self.end_waiters.pop(run_id, None)

    def passed(self, frame: str) -> None:
        payload = json.loads(frame).get("payload")
        if isinstance(payload, dict) and payload.get("state") in TERMINAL:
            fut = self.end_waiters.pop(str(payload.get("runId")), None)
            if fut is not None and not fut.done():
                fut.set_result(None)


class MirroredConnections(Connections):
    def __init__(self, resume_seconds: float, keep_events: int, mirror: RedisOutbox) -> None:
        super().__init__(resume_seconds, keep_events)
        self.mirror = mirror

    def _new(self, principal: Principal) -> Connection:
        return MirroredConnection(principal, self.keep_events, self.mirror)

    def attach(self, conn: Connection, outbox: Outbox) -> None:
        super().attach(conn, outbox)
        if isinstance(conn, MirroredConnection) and not conn.forgotten:
            self._refresh(conn)

    def detach(self, conn: Connection, outbox: Outbox) -> None:
        mine = conn.outbox is outbox
        super().detach(conn, outbox)
        if mine and isinstance(conn, MirroredConnection):
            conn.unfollow()
            if not conn.forgotten and conn.id in self._conns:
                self._refresh(conn)  # now it waits `resume_seconds` in Redis too

    def _refresh(self, conn: MirroredConnection) -> None:
        if conn.moved:
            if conn.window is not None:
                self.mirror.holder(conn, self.mirror.ttl(conn))
        else:
            self.mirror.touch(conn)

    def _expire(self, conn: Connection) -> None:
        super()._expire(conn)
        if conn.outbox is None:
            self._forget(conn)

    def drop(self, conn: Connection) -> None:
        super().drop(conn)
        self._forget(conn)

    def _forget(self, conn: Connection) -> None:
        if isinstance(conn, MirroredConnection):
            conn.unfollow()
            if not conn.forgotten:
                conn.forgotten = True
                self.mirror.forget(conn)

    def close(self) -> None:
        # Shutdown: the keys stay in Redis (a client may resume on another worker); followers stop.
        for conn in list(self._conns.values()):
            if isinstance(conn, MirroredConnection):
                conn.unfollow()
            Connections.drop(self, conn)

    # -- connect.resume ------------------------------------------------------------------------

    async def resume(self, fresh: Connection, outbox: Outbox, conn_id: str, token: str,
                     last_seq: int) -> tuple[Connection, dict[str, Any]]:
        """(the connection now on this socket, the reply's payload with `_replay`); raises WsError."""
        local = self.find(conn_id)
        if local is not None and (local.principal != fresh.principal or not local.token_matches(token)):
            raise gone()
        window = "w_" + os.urandom(8).hex()
        try:
            state, seq = await self._take_over(fresh.principal, conn_id, token, last_seq, window)
        except (OSError, TimeoutError) as exc:
            log.warning("resume of %s: Redis does not answer (%s: %s); only this worker's connections resume",
                        conn_id, type(exc).__name__, exc)
            state, seq = "unknown", 0
        if state == "moved":
            return await self._resume_moved(local, fresh, outbox, conn_id, token, last_seq, seq, window)
        if local is None or (isinstance(local, MirroredConnection) and local.moved):
            raise gone()
        # this worker numbers it (or Redis cannot tell): the in-memory resume
        return local, self.resume_here(local, fresh, outbox, last_seq)

    def resume_here(self, old: Connection, fresh: Connection, outbox: Outbox, last_seq: int) -> dict[str, Any]:
        events = old.since(last_seq)
        if events is None:
            raise WsError("not_found", "The events after lastSeq are no longer held; start afresh.")
        self.drop(fresh)
        self.attach(old, outbox)
        return {"resumed": True, "replayed": len(events), "connId": old.id, "lastSeq": old.seq, "_replay": events}

    async def _take_over(self, who: Principal, conn_id: str, token: str, last_seq: int,
                         window: str) -> tuple[str, int]:
        mirror = self.mirror
        keys = mirror.keys(conn_id)
        args = (token_hash(token), who.user, who.kind, who.key_hash or "", last_seq, window, mirror.me,
                mirror.ttl_attached(), mirror.maxlen)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BEHIND_WAIT_S
        while True:
            [reply] = await SCRIPTS.execute(mirror.client, [SCRIPTS.call("resume", keys, args)])
            if not isinstance(reply, list):
                raise ConnectionError(f"Redis refused the resume: {reply}")
            state, seq = reply[0].decode(), int(reply[1])
            if state != "behind" or loop.time() >= deadline:
                return ("gone", seq) if state == "behind" else (state, seq)
            # The worker that numbers it has not written the client's last events yet: wait for them.
            await wait_for_entry(mirror, keys[1], seq, deadline - loop.time())

    async def _resume_moved(self, local: Connection | None, fresh: Connection, outbox: Outbox, conn_id: str,
                            token: str, last_seq: int, seq: int, window: str) -> tuple[Connection, dict[str, Any]]:
        mirror = self.mirror
        if len(mirror.followers) >= MAX_FOLLOWERS:
            raise WsError("not_found", "This gateway follows too many resumed connections; start afresh.")
        reading = Reading(last_seq, window)
        try:
            events = await replay(mirror, conn_id, reading, self.keep_events)
        except (Gap, Superseded):
            raise WsError("not_found", "The events after lastSeq are no longer held; start afresh.") from None
        except (OSError, TimeoutError) as exc:
            log.warning("resume of %s: cannot read its events from Redis (%s: %s)", conn_id, type(exc).__name__, exc)
            raise gone() from None
        if isinstance(local, MirroredConnection):
            conn = local
            if not conn.moved:
                conn.moved_away()
        else:
            conn = MirroredConnection(fresh.principal, self.keep_events, mirror)
            conn.id, conn.resume_token, conn.token_hash = conn_id, token, token_hash(token)
            conn.moved = True
            self._conns[conn.id] = conn
        conn.window = window
        conn.forgotten = False
        self.drop(fresh)
        self.attach(conn, outbox)
        conn.follow(outbox, reading)
        newest = max(seq, reading.expect - 1)
        return conn, {"resumed": True, "replayed": len(events), "connId": conn.id, "lastSeq": newest,
                      "_replay": events}


async def wait_for_entry(mirror: RedisOutbox, stream: str, seq: int, within: float) -> None:
    """Until the stream has an entry after `seq`, or `within` seconds (on a connection of its own:
    the shared one must not block)."""
    ms = max(int(within * 1000), 1)
    redis = mirror.blocking_connection(within)
    try:  # after every entry numbered `seq` (control entries are `<seq>-<n>`)
        await redis.execute([("XREAD", "COUNT", 1, "BLOCK", ms, "STREAMS", stream, f"{seq}-{2**64 - 1}")])
    finally:
        await redis.close()


def gone() -> WsError:
    return WsError("not_found", "That connection is gone; start afresh (the hello on this socket).")
