"""The chat sockets' events in Redis (`redis_url`), so that a socket on another worker or replica can
resume a logical connection: each connection's numbered events are mirrored into a bounded Redis
Stream, `{prefix}ws:c:{connId}:events` (entry id `<seq>-0`, field `f` the frame; XADD MAXLEN ~
`web.resume_events`), beside a hash `{prefix}ws:c:{connId}` (the resume token's SHA-256, the
principal, the newest seq, the worker that numbers it). Both keys expire: an hour after the last
write while a socket is attached, `web.resume_seconds` (+5 s) after it dropped.

Two ways an event gets its number:
- *local* (every connection starts so): the worker that holds it numbers it and sends the frame to
  its socket at once; the mirror follows in the background (MIRROR). The single-process path is
  unchanged; the mirror costs one EVALSHA per connection per event-loop turn, all connections'
  in one pipelined write.
- *moved*: once a socket on another worker resumed it (RESUME), Redis numbers it: every producer
  (a run still streaming on the first worker, a run started on the new one) appends (APPEND), and
  the socket reads the stream (web/follow_redis.py). The first worker learns of the move when its
  next MIRROR is refused, and appends those events again.

What a socket saw is never renumbered: RESUME takes over only once the stream holds the client's
last seq (the first worker's mirror may be a turn behind), and MIRROR refuses atomically after it.

Bounded: events waiting for Redis (MAX_PENDING), one event's size (MAX_EVENT_CHARS), the stream's
length. A Redis that fails or does not answer costs the mirror, never the socket: the batch is
dropped, a line is logged, and for BACKOFF_S nothing is sent; a stream with a gap is refused by
the resume that needs it (web/follow_redis.py checks that seqs follow each other), and the client
starts afresh as when a connection expired."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from clawdbot.state.redis_lean import LeanRedis, ReplyError
from clawdbot.state.redis_pubsub import replica_id

if TYPE_CHECKING:
    from clawdbot.state.redis_client import RedisClient
    from clawdbot.web.auth import Principal
    from clawdbot.web.outbox import Outbox

log = logging.getLogger("clawdbot.web")


class Mirrored(Protocol):
    """What the mirror reads and marks of a connection (web/connections_redis.py Mirrored,
    which builds on this module: hence a protocol here, not an import)."""

    id: str
    seq: int
    token_hash: str
    principal: Principal
    outbox: Outbox | None
    moved: bool
    forgotten: bool
    window: str | None

    def moved_away(self) -> None: ...

MAX_PENDING = 50_000  # events of all connections waiting for the next write to Redis
MAX_EVENT_CHARS = 2 * 1024 * 1024  # a larger event is not mirrored (a resume elsewhere then starts afresh)
# The keys of a connection whose socket is open (pushed back by every write, and by a resumed
# socket's reader while idle; the hash is written again when the socket drops).
ATTACHED_TTL_MS = 3600 * 1000
GRACE_MS = 5000  # beyond web.resume_seconds, for clocks and the last write in flight
BACKOFF_S = 1.0  # after a failed write, nothing is sent for this long

# KEYS: hash, stream. ARGV: owner, ttl, maxlen, token hash, user, kind, key hash, seq, then seq/frame pairs.
# 0: the connection moved (nothing written); 1: written.
MIRROR = """
if redis.call('HEXISTS', KEYS[1], 'moved') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', ARGV[4], 'user', ARGV[5], 'kind', ARGV[6],
           'key', ARGV[7], 'seq', ARGV[8])
for i = 9, #ARGV, 2 do
  redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], ARGV[i] .. '-0', 'f', ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""

# KEYS: hash, stream. ARGV: ttl (0: leave it), maxlen, then head/tail pairs (frame = head .. seq .. tail).
# The newest seq, or -1 when the connection is gone.
APPEND = """
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq'))
if not seq then return -1 end
for i = 3, #ARGV, 2 do
  seq = seq + 1
  local n = string.format('%d', seq)
  redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], n .. '-0', 'f', ARGV[i] .. n .. ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'seq', string.format('%d', seq))
if tonumber(ARGV[1]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
return seq
"""

# KEYS: hash, stream. ARGV: token hash, user, kind, key hash, last seq, window, me, ttl, maxlen.
# {'gone'} | {'behind', seq} | {'local', seq} (the caller numbers it) | {'moved', seq}: the caller's
# window reads it now; a control entry `<seq>-<n>` {window} tells any earlier reader to stop.
RESUME = """
local m = redis.call('HMGET', KEYS[1], 'token', 'user', 'kind', 'key', 'seq', 'moved', 'owner')
if not m[1] or m[1] ~= ARGV[1] or m[2] ~= ARGV[2] or m[3] ~= ARGV[3] or m[4] ~= ARGV[4] then
  return {'gone', 0}
end
local seq = tonumber(m[5])
if not m[6] and m[7] == ARGV[7] then return {'local', seq} end
if tonumber(ARGV[5]) > seq then return {'behind', seq} end
local ctl = redis.call('HINCRBY', KEYS[1], 'ctl', 1)
redis.call('HSET', KEYS[1], 'moved', '1', 'window', ARGV[6])
redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[9], string.format('%d-%d', seq, ctl), 'window', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[8])
redis.call('PEXPIRE', KEYS[2], ARGV[8])
return {'moved', seq}
"""

# KEYS: hash, stream. ARGV: window, me, ttl (0: delete). Only the connection's current holder may.
HOLDER = """
local m = redis.call('HMGET', KEYS[1], 'moved', 'window', 'owner')
if (m[1] and m[2] == ARGV[1]) or (not m[1] and m[3] == ARGV[2]) then
  if tonumber(ARGV[3]) > 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    redis.call('PEXPIRE', KEYS[2], ARGV[3])
  else
    redis.call('DEL', KEYS[1], KEYS[2])
  end
  return 1
end
return 0
"""


class Scripts:
    """Lua scripts by name, run with EVALSHA in a pipeline; loaded again when Redis lost them."""

    def __init__(self, **sources: str) -> None:
        self.sources = sources
        self.sha = {name: hashlib.sha1(src.encode(), usedforsecurity=False).hexdigest()
                    for name, src in sources.items()}

    def call(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> tuple[Any, ...]:
        return ("EVALSHA", self.sha[name], len(keys), *keys, *args)

    async def execute(self, client: RedisClient, commands: list[tuple[Any, ...]]) -> list[Any]:
        """The replies (error replies as ReplyError values); raises OSError or TimeoutError."""
        replies = await client.lean.execute(commands)
        again = [i for i, r in enumerate(replies) if isinstance(r, ReplyError) and str(r).startswith("NOSCRIPT")]
        if again:
            loads = [("SCRIPT", "LOAD", src) for src in self.sources.values()]
            more = await client.lean.execute([*loads, *(commands[i] for i in again)])
            for i, reply in zip(again, more[len(loads):], strict=True):
                replies[i] = reply
        return replies


SCRIPTS = Scripts(mirror=MIRROR, append=APPEND, resume=RESUME, holder=HOLDER)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


Entry = tuple[int, str, str]  # seq (0 once moved: Redis numbers it), the frame's head and tail


class RedisOutbox:
    """The mirror of one worker: events, and the commands that must follow them (a run's end), are
    written once per event-loop turn, one flush at a time, so a connection's events reach Redis in
    the order they were numbered."""

    def __init__(self, client: RedisClient, prefix: str, keep_events: int, resume_seconds: float,
                 where: str) -> None:
        self.client = client
        self.prefix = prefix
        self.maxlen = max(keep_events, 1)
        self.detached_ttl_ms = int(resume_seconds * 1000) + GRACE_MS
        self.where = where
        self.me = replica_id()
        self._pending: dict[Mirrored, list[Entry]] = {}
        self._count = 0
        self._before: list[tuple[Any, ...]] = []  # sent ahead of the events (a session released)
        self._after: list[tuple[Any, ...]] = []  # sent behind them (a run's end, a connection forgotten)
        self._flushing: asyncio.Task[None] | None = None
        self._paused_until = 0.0
        self.down = False
        self.lost = 0  # events not mirrored: Redis failed, a bound
        self.writes = 0
        self.followers: set[Hashable] = set()  # web/follow_redis.py Followers, counted for their bound

    # -- keys --------------------------------------------------------------------------------

    def keys(self, conn_id: str) -> tuple[str, str]:
        base = f"{self.prefix}ws:c:{conn_id}"
        return base, base + ":events"

    def ttl(self, conn: Mirrored) -> int:
        return ATTACHED_TTL_MS if conn.outbox is not None else self.detached_ttl_ms

    @staticmethod
    def ttl_attached() -> int:
        return ATTACHED_TTL_MS

    def blocking_connection(self, block_s: float = 5.0) -> LeanRedis:
        """A Redis connection of its own, for a blocking read (closed by the caller)."""
        return LeanRedis("", timeout=block_s + 5.0, target=self.client.lean.target)

    # -- what connections and runs queue -------------------------------------------------------

    def add(self, conn: Mirrored, seq: int, head: str, tail: str) -> None:
        """A numbered event of `conn` (seq 0: moved, Redis numbers it)."""
        if self._count >= MAX_PENDING or len(head) + len(tail) > MAX_EVENT_CHARS or self._paused():
            self.lost += 1
            return
        batch = self._pending.get(conn)
        if batch is None:
            self._pending[conn] = batch = []
        batch.append((seq, head, tail))
        self._count += 1
        self._schedule()

    def touch(self, conn: Mirrored) -> None:
        """Write the connection's state and expiry again (its socket attached or dropped)."""
        if self._paused():
            return
        self._pending.setdefault(conn, [])
        self._schedule()

    def before(self, *command: Any) -> None:
        if not self._paused():
            self._before.append(command)
            self._schedule()

    def after(self, *command: Any) -> None:
        if not self._paused():
            self._after.append(command)
            self._schedule()

    def forget(self, conn: Mirrored) -> None:
        """Its keys go (its events not yet written with them), if this worker still holds it."""
        self._count -= len(self._pending.pop(conn, ()))
        self.holder(conn, 0)

    def holder(self, conn: Mirrored, ttl_ms: int) -> None:
        """Expire (ttl_ms > 0) or delete (0) the keys, if this worker still holds the connection."""
        self.after(*SCRIPTS.call("holder", self.keys(conn.id), (conn.window or "", self.me, ttl_ms)))

    def _paused(self) -> bool:
        return self.down and time.monotonic() < self._paused_until

    def _schedule(self) -> None:
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush(), name="ws mirror")

    # -- writing -------------------------------------------------------------------------------

    async def _flush(self) -> None:
        try:
            while self._pending or self._before or self._after:
                await self._write_batch()
        finally:
            self._flushing = None

    async def _write_batch(self) -> None:
        pending, self._pending, self._count = self._pending, {}, 0
        before, self._before = self._before, []
        after, self._after = self._after, []
        conns = list(pending)
        commands = [*before, *(self._command(c, pending[c]) for c in conns), *after]
        try:
            replies = await SCRIPTS.execute(self.client, commands)
        except (OSError, TimeoutError) as exc:
            self.lost += sum(len(b) for b in pending.values())
            self._failed(exc)
            return
        if self.down:
            self.down = False
            log.info("chat events are mirrored to Redis on %s again", self.where)
        self.writes += 1
        for conn, reply in zip(conns, replies[len(before):len(before) + len(conns)], strict=True):
            self._answered(conn, pending[conn], reply)
        for reply in (*replies[:len(before)], *replies[len(before) + len(conns):]):
            if isinstance(reply, ReplyError):
                log.warning("Redis refused a chat socket command: %s", reply)

    def _command(self, conn: Mirrored, batch: list[Entry]) -> tuple[Any, ...]:
        keys = self.keys(conn.id)
        if conn.moved:
            ttl = self.ttl(conn) if conn.outbox is not None else 0  # its reader keeps it alive
            parts = [p for _, head, tail in batch for p in (head, tail)]
            return SCRIPTS.call("append", keys, (ttl, self.maxlen, *parts))
        p = conn.principal
        pairs = [x for seq, head, tail in batch for x in (seq, f"{head}{seq}{tail}")]
        return SCRIPTS.call("mirror", keys, (self.me, self.ttl(conn), self.maxlen, conn.token_hash, p.user,
                                             p.kind, p.key_hash or "", conn.seq, *pairs))

    def _answered(self, conn: Mirrored, batch: list[Entry], reply: Any) -> None:
        if isinstance(reply, ReplyError):
            log.warning("Redis refused the events of connection %s: %s", conn.id, reply)
            self.lost += len(batch)
        elif reply == 0 and not conn.moved:
            # A socket on another worker resumed it: Redis numbers its events from now on, these too.
            conn.moved_away()
            if batch:
                self._pending[conn] = [*batch, *self._pending.get(conn, [])]
                self._count += len(batch)
        elif reply == -1:
            conn.forgotten = True  # expired or forgotten: nobody can resume it any more

    def _failed(self, exc: BaseException) -> None:
        self._paused_until = time.monotonic() + BACKOFF_S
        if not self.down:
            self.down = True
            log.warning("cannot mirror chat events to Redis on %s (%s: %s): a socket can resume only on "
                        "the worker that holds its connection until Redis answers again", self.where,
                        type(exc).__name__, exc)

    async def close(self, within: float = 5.0) -> None:
        """Shutdown: what is queued is written (a resume elsewhere sees the runs' last events)."""
        task = self._flushing
        if task is not None:
            await asyncio.wait([task], timeout=within)
