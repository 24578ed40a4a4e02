"""Chat runs seen by every worker sharing Redis (`redis_url`): one run per session across them, the
session's `running` run from anywhere, and `chat.abort` of a run another worker streams.

- The claim: `{prefix}ws:s:{sessionId}` = the run's id (SET NX, CLAIM_TTL_S), beside
  `{prefix}ws:r:{runId}` = user, session and connection; the worker that runs it pushes both
  expiries back every CLAIM_TTL_S / 3 (and sets them again if Redis lost them), and deletes them
  when the run ends (ahead of its last event: the session is free before the client hears it ended),
  so a worker that dies frees its sessions within CLAIM_TTL_S.
- Abort: the asking worker publishes `{"op": "abort", "run", "user"}` on `{prefix}ws:runs`; the
  worker holding the run aborts it. Every run's end is published there too (`ended`, behind its
  last event), which is what the asking worker waits for (at most ABORT_WAIT_S) before it answers.

Redis failing degrades to one worker's view: a claim that cannot be written is granted by the
worker alone (logged), `running` is this worker's answer, an abort reaches this worker's runs."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from clawdbot.state.redis_pubsub import Subscription
from clawdbot.web.outbox_redis import Scripts

if TYPE_CHECKING:
    from clawdbot.state.redis_client import RedisClient
    from clawdbot.web.connections import Connection
    from clawdbot.web.outbox_redis import RedisOutbox
    from clawdbot.web.runs import ChatRun, Runs

log = logging.getLogger("clawdbot.chat")
CLAIM_TTL_S = 30.0
ABORT_WAIT_S = 5.0
MAX_MESSAGE = 1024  # bytes of one message on the channel; larger ones are not ours

# KEYS: session, run. ARGV: run id, the run's record, ttl. 1: claimed, 0: busy.
CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[3]) then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
# KEYS: session, run. ARGV: run id, the run's record, ttl. Pushes the expiries back (claims again
# what Redis lost); 0: another run holds the session.
KEEP = """
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
"""
# KEYS: session, run. ARGV: run id.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('DEL', KEYS[2])
return 1
"""
SCRIPTS = Scripts(claim=CLAIM, keep=KEEP, release=RELEASE)


class RedisRuns:
    def __init__(self, client: RedisClient, prefix: str, mirror: RedisOutbox, where: str) -> None:
        self.client = client
        self.prefix = prefix
        self.mirror = mirror
        self.channel = f"{prefix}ws:runs"
        self.ttl_ms = int(CLAIM_TTL_S * 1000)
        self.local: Runs | None = None  # set by Runs
        self.subscription = Subscription(client, self.channel, self._message, self._subscribed, where)
        self._waiting: dict[str, asyncio.Future[None]] = {}  # run id -> its `ended` notice
        self._keeping: asyncio.Task[None] | None = None
        self._aborts: set[asyncio.Task[bool]] = set()
        self._down = False

    def _keys(self, session_id: str, run_id: str) -> tuple[str, str]:
        return f"{self.prefix}ws:s:{session_id}", f"{self.prefix}ws:r:{run_id}"

    @staticmethod
    def _record(user: str, session_id: str, conn_id: str) -> str:
        return json.dumps([user, session_id, conn_id])

    def start(self) -> None:
        self.subscription.start()
        self._keeping = asyncio.get_running_loop().create_task(self._keep(), name="ws run claims")

    async def close(self) -> None:
        if self._keeping is not None:
            self._keeping.cancel()
            await asyncio.gather(self._keeping, return_exceptions=True)
        for t in list(self._aborts):
            t.cancel()
        await self.subscription.close()

    def _failed(self, what: str, exc: BaseException) -> None:
        if not self._down:
            self._down = True
            log.warning("chat runs: cannot %s in Redis (%s: %s); each worker knows only its own runs until "
                        "Redis answers again", what, type(exc).__name__, exc)

    def _ok(self) -> None:
        if self._down:
            self._down = False
            log.info("chat runs are shared through Redis again")

    # -- claims ----------------------------------------------------------------------------------

    async def claim(self, session_id: str, run_id: str, user: str, conn_id: str) -> bool:
        """Whether the session is free across workers (True when Redis cannot tell)."""
        call = SCRIPTS.call("claim", self._keys(session_id, run_id),
                            (run_id, self._record(user, session_id, conn_id), self.ttl_ms))
        try:
            [reply] = await SCRIPTS.execute(self.client, [call])
        except (OSError, TimeoutError) as exc:
            self._failed("claim a session", exc)
            return True
        self._ok()
        return bool(reply == 1)

    def release(self, session_id: str, run_id: str) -> None:
        """Free the session: written ahead of the run's last event (web/outbox_redis.py)."""
        self.mirror.before(*SCRIPTS.call("release", self._keys(session_id, run_id), (run_id,)))

    def ended(self, run: ChatRun) -> None:
        """Published behind the run's last event."""
        self.mirror.after("PUBLISH", self.channel, json.dumps({"op": "ended", "run": run.id, "conn": run.conn.id}))

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(CLAIM_TTL_S / 3)
            runs = list(self.local.in_flight()) if self.local is not None else []
            if not runs:
                continue
            calls = [SCRIPTS.call("keep", self._keys(r.session_id, r.id),
                                  (r.id, self._record(r.user, r.session_id, r.conn.id), self.ttl_ms)) for r in runs]
            try:
                await SCRIPTS.execute(self.client, calls)
            except (OSError, TimeoutError) as exc:
                self._failed("keep the runs' claims", exc)
            else:
                self._ok()

    async def running(self, session_id: str) -> str | None:
        try:
            value = await self.client.get(f"{self.prefix}ws:s:{session_id}")
        except (OSError, TimeoutError) as exc:
            self._failed("read a session's run", exc)
            return None
        return value.decode() if value else None

    # -- abort -----------------------------------------------------------------------------------

    async def abort(self, run_id: str, user: str, caller: Connection | None) -> bool:
        """Abort a run another worker streams; True once it ended (or ABORT_WAIT_S passed)."""
        try:
            raw = await self.client.get(self._keys("", run_id)[1])
        except (OSError, TimeoutError) as exc:
            self._failed("find a run", exc)
            return False
        try:
            owner, _, conn_id = json.loads(raw) if raw else ("", "", "")
        except ValueError:
            return False
        if owner != user:
            return False
        # The caller's own stream carries the run's events: answer once its socket has the last one.
        seen = caller.end_seen(run_id) if caller is not None and caller.id == conn_id else None
        fut = seen if seen is not None else self._expect(run_id)
        try:
            await self.client.publish(self.channel, json.dumps({"op": "abort", "run": run_id, "user": user}))
            await asyncio.wait_for(asyncio.shield(fut), ABORT_WAIT_S)
        except (OSError, TimeoutError):
            pass
        finally:
            if self._waiting.get(run_id) is fut:
                del self._waiting[run_id]
            if seen is not None and caller is not None:
                caller.end_forgotten(run_id)
        return True

    def _expect(self, run_id: str) -> asyncio.Future[None]:
        fut = self._waiting.get(run_id)
        if fut is None:
            self._waiting[run_id] = fut = asyncio.get_running_loop().create_future()
        return fut

    def _message(self, data: bytes) -> None:
        if len(data) > MAX_MESSAGE:
            return
        try:
            msg = json.loads(data)
            op, run_id = msg["op"], str(msg["run"])
        except (ValueError, KeyError, TypeError):
            return
        if op == "ended":
            fut = self._waiting.pop(run_id, None)
            if fut is not None and not fut.done():
                fut.set_result(None)
        elif op == "abort" and self.local is not None and self.local.get(run_id, str(msg.get("user"))) is not None:
            task = asyncio.get_running_loop().create_task(self.local.abort(run_id, str(msg.get("user"))))
            self._aborts.add(task)
            task.add_done_callback(self._aborts.discard)

    async def _subscribed(self) -> None:
        return None  # nothing to catch up on: an abort published meanwhile is lost (the asker times out)
