"""A service's in-flight limit with a bounded wait queue, shared fairly between tenants.

`try_acquire()` is the hot path (no await, no allocation). Only when the service is full does a
request wait, at most `max_queue` of them and for at most `queue_timeout` seconds; beyond either it
gets `Overloaded` (503 with Retry-After), which the router treats like any retryable failure: the
next deployment is tried.

The queue is one FIFO per tenant (routing/fair.py: a key, user or team), and a freed slot goes to
the waiting tenant that has used the service least lately, for its weight: each slot handed to a
tenant adds 1 / weight to its usage, and every tenant's usage decays by e every `memory` seconds.
So tenants that keep waiting get slots in proportion to their weights (1 : 2 gives one, then two),
a tenant that floods the service soon has the most usage and waits behind everyone else's requests
(only its own queue grows), and a tenant below its share (a few requests now and then, even a
cluster of them) goes ahead of the flood's backlog, as it would have found a free slot without the
flood. A tenant that stops sending keeps its usage until it decays: coming back one request at a
time earns nothing. With a single tenant this is exactly a FIFO.

Among the light tenants arrival order counts. A tenant is light when its usage is under
LIGHT_RATIO of the most-used waiting tenant's (it gets less than the flood: under the share a
max-min fair split gives it) and it has fewer than half as many waiters as the longest queue or no
more than the slots (times its weight); or, whatever its usage, when it has no more waiters than
the slots and a usage within AHEAD_ROUNDS rounds of the slots (AHEAD_ROUNDS x `max_inflight`
hand-overs, at most AHEAD_MAX, over its weight) of the least usage of any waiting tenant. The light
tenant whose oldest waiter came first is served before the others: a light tenant's cluster of
requests goes through in arrival order, as FIFO without the flood would have served it. Ordering
light tenants by usage made such a cluster wait behind later requests of tenants that had used a
little less, and counting a backlog against the slots alone dropped a cluster of five or more to
that ordering: both doubled the light tenants' tail (docs/benchmarks.md, "fair share against its
floor" and "the light tenants' order, replayed").
The price is bounded: a light tenant stays under LIGHT_RATIO of the most-served one's usage, or
with a short queue runs at most AHEAD_ROUNDS rounds ahead of the least-served waiting tenant; a
flood has the longest queue, so a backlog, and is ordered by usage (its weight) alone.

`memory` follows the service: 300 hand-overs' worth of time (the gap between two hand-overs is a
request's time divided by the slots), measured while requests wait; 2 s until measured, within
0.5 s .. 1 h. So the last ~300 slots handed out are what counts, whatever a request takes (50 ms
or a minute); long enough that a flood kept out for a moment by the light tenants' own cluster
still has the most usage. A tenant that has not used the service lately (a new one, or one back
after a pause) goes first among those with a backlog until its usage has caught up with the
others': at the start of a flood that is the flooding tenant, which takes the slots no light
tenant waits for until it has used more than the others.

A full queue does not simply refuse the newcomer: if another tenant holds more than its share of
the queue (waiters / weight), that tenant's newest waiter is refused instead, so a flood cannot
keep others out of the queue either. Memory stays bounded: at most `max_queue` live waiters, a heap
of waiting tenants rebuilt when stale entries outnumber live ones, and the usage of at most
`2 * max_queue + 16` tenants (idle ones forgotten first).

Deficit round robin (issue 17's suggestion) and start-time fair queueing were built first and
measured: both share the slots fairly, but they hand a light tenant's cluster of requests one slot
per round, alternating with the flood, where this serves the cluster first (docs/benchmarks.md,
issue 17).
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import math
import time
from collections.abc import Callable

from clawdbot.core.errors import Overloaded
from clawdbot.routing.fair import ONE_QUEUE, FairShare

RETRY_AFTER = "1"  # seconds a client is asked to wait when a queue is full
MEMORY_HANDOVERS = 300  # usage decays by e over this many hand-overs' time
MEMORY_DEFAULT = 2.0  # seconds, until the gap between hand-overs is measured
MEMORY_MIN = 0.5
MEMORY_MAX = 3600.0
AHEAD_ROUNDS = 4  # how far ahead of the least usage a tenant without a backlog goes in arrival order
AHEAD_MAX = 32  # ...in hand-overs at most (about a tenth of MEMORY_HANDOVERS: big services' rounds are long)
LIGHT_RATIO = 0.75  # ...or while under this share of the most-used waiting tenant's usage
SCAN_MAX = 256  # heap entries looked at per hand-over; with more tenants waiting, least usage alone
_NEVER = -math.inf  # the key of a tenant with no usage
_LOG_LIGHT_RATIO = math.log(LIGHT_RATIO)


class _Tenant:
    """One tenant's waiters (oldest first) and its usage, as `key` = ln(usage) + the limiter's
    clock (in `memory`s) when it last changed: keys compare as decayed usages do, at any time."""

    __slots__ = ("entry", "key", "step", "waiters")

    def __init__(self, step: float) -> None:
        self.step = step  # 1 / its weight
        self.key = _NEVER
        self.entry = -1  # the id of its live heap entry while it waits
        # (arrival number, future): True when a slot was handed over, False when pushed out of a full queue
        self.waiters: collections.deque[tuple[int, asyncio.Future[bool]]] = collections.deque()


class Limiter:
    __slots__ = ("_cap", "_clock", "_gap", "_heap", "_last", "_now", "_seq", "_tenants", "_vclock", "fair",
                 "inflight", "max_inflight", "max_queue", "memory", "name", "timeout", "waiting")

    def __init__(self, name: str, max_inflight: int, max_queue: int = 0, timeout: float = 10.0,
                 fair: FairShare = ONE_QUEUE, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.max_inflight = max_inflight
        self.max_queue = max_queue
        self.timeout = timeout
        self.fair = fair
        self._cap = min(fair.max_per_tenant or max_queue, max_queue)  # waiters one tenant may have
        self.inflight = 0
        self.waiting = 0  # live waiters
        self.memory = MEMORY_DEFAULT
        self._clock = clock
        self._now = clock()  # when _vclock was last advanced
        self._vclock = 0.0  # time in `memory`s
        self._gap: float | None = None  # moving average of the seconds between hand-overs
        self._last: float | None = None  # the last hand-over, while requests kept waiting since
        self._heap: list[tuple[float, int, _Tenant]] = []  # waiting tenants by key; stale entries skipped
        self._seq = itertools.count()
        self._tenants: dict[str, _Tenant] = {}

    def try_acquire(self) -> bool:
        if self.inflight < self.max_inflight and not self.waiting:
            self.inflight += 1
            return True
        return False

    async def acquire(self, tenant: str = "") -> None:
        """A slot, waiting in `tenant`'s queue if need be."""
        if self.try_acquire():
            return
        if self.fair.by is None:  # fair share off: one FIFO, whoever the caller says it is
            tenant = ""
        t = self._tenants.get(tenant)
        mine = len(t.waiters) if t is not None else 0
        if mine >= self._cap and self._cap < self.max_queue:
            raise self.overloaded(f"{mine} requests of the same {self.fair.by} are already waiting "
                                  f"(fair_share.max_queue_per_tenant)")
        if self.waiting >= self.max_queue and not self._push_out(tenant, mine):
            raise self.overloaded(f"{self.max_queue} requests are already waiting")
        if t is None:
            if len(self._tenants) >= 2 * self.max_queue + 16:
                self._prune()
            t = self._tenants[tenant] = _Tenant(1.0 / self.fair.quantum(tenant))
        if not t.waiters:
            t.entry = next(self._seq)
            heapq.heappush(self._heap, (t.key, t.entry, t))
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        t.waiters.append((next(self._seq), fut))
        self.waiting += 1
        timeout = self.timeout
        try:
            async with asyncio.timeout(timeout):
                granted = await fut
        except BaseException as exc:
            if not fut.done():
                fut.cancel()
            if fut.cancelled():
                self._forget(t, fut)
            elif fut.result():
                self.release()  # the slot was handed over just as we gave up: pass it on
            if isinstance(exc, TimeoutError):
                raise self.overloaded(f"no slot freed up within {timeout:g}s") from None
            raise
        if not granted:
            raise self.overloaded("its queue is full: this request gave its place to another tenant's "
                                  "(fair share)")

    def release(self) -> None:
        heap = self._heap
        if not heap:  # nobody waiting (the hot path): one test, as before
            self.inflight -= 1
            return
        now = self._clock()
        while (t := self._next(now)) is not None:
            last = self._last
            fut = self._oldest_live(t)
            if fut is None:
                continue
            self._charge(t, last, now)
            t.entry = next(self._seq) if t.waiters else -1  # its entry now stale: a new one, or none
            if t.waiters:
                heapq.heappush(heap, (t.key, t.entry, t))
            self._sweep()
            fut.set_result(True)  # the slot goes straight to the tenant next in line
            return
        self.inflight -= 1

    def _next(self, now: float) -> _Tenant | None:
        """The waiting tenant a freed slot goes to: of the light ones (module docstring), the one
        whose oldest waiter came first; when there is none, the tenant with the least usage."""
        heap = self._heap
        while heap and heap[0][1] != heap[0][2].entry:  # stale: re-queued under a new key, or emptied
            heapq.heappop(heap)
        if not heap:
            return None
        least_key, _, least = heap[0]
        if len(heap) > SCAN_MAX:
            return least
        top, longest = _NEVER, 0
        for key, entry, t in heap:
            if entry == t.entry:
                top = max(top, key)
                longest = max(longest, len(t.waiters))
        below = top + _LOG_LIGHT_RATIO  # keys under it: usage under LIGHT_RATIO of the top's (none if no usage)
        clock = self._vclock_at(now)
        floor = math.exp(least_key - clock) if least_key != _NEVER else 0.0
        slots = self.max_inflight
        ahead = min(AHEAD_ROUNDS * slots, AHEAD_MAX)
        best, first = None, 0
        for key, entry, t in heap:
            if entry != t.entry:  # stale
                continue
            waiting = len(t.waiters)
            if key < below:  # under LIGHT_RATIO of the top's usage: light unless its queue is among the longest
                if waiting * t.step > slots and 2 * waiting >= longest:
                    continue
            elif waiting * t.step > slots or math.exp(key - clock) > floor + ahead * t.step:  # no lead left
                continue
            if best is None or t.waiters[0][0] < first:
                best, first = t, t.waiters[0][0]
        return best if best is not None else least

    def _oldest_live(self, t: _Tenant) -> asyncio.Future[bool] | None:
        """Takes `t`'s oldest waiter that has not given up (one cancelled but not yet forgotten is
        dropped here)."""
        waiters = t.waiters
        while waiters:
            _, fut = waiters.popleft()
            self._gone()
            if not fut.done():
                return fut
        t.entry = -1
        return None

    def _vclock_at(self, now: float) -> float:
        """The limiter's clock (in `memory`s) at `now`."""
        return self._vclock + (now - self._now) / self.memory

    def _charge(self, t: _Tenant, last: float | None, now: float) -> None:
        """A slot handed to `t` at `now`: the clock advanced, `memory` re-measured (`last`: the
        previous hand-over, if requests kept waiting since), 1 / weight added to its usage."""
        if last is not None:
            gap = now - last
            self._gap = gap if self._gap is None else self._gap + 0.05 * (gap - self._gap)
        self._last = now if self.waiting else None
        clock = self._vclock = self._vclock_at(now)
        self._now = now
        if self._gap is not None:
            self.memory = min(MEMORY_MAX, max(MEMORY_MIN, MEMORY_HANDOVERS * self._gap))
        used = math.exp(t.key - clock) if t.key != _NEVER else 0.0
        t.key = math.log(used + t.step) + clock

    def _push_out(self, tenant: str, mine: int) -> bool:
        """The queue is full: refuse the newest waiter of the tenant furthest over its share, if
        that is not `tenant` itself (counted with the request it brings)."""
        victim = None
        worst = (mine + 1) / self.fair.quantum(tenant)
        for name, t in self._tenants.items():
            load = len(t.waiters) * t.step
            if load > worst and name != tenant:
                victim, worst = t, load
        if victim is None:
            return False
        _, fut = victim.waiters.pop()
        self._gone()
        if not victim.waiters:
            self._emptied(victim)
        if not fut.done():
            fut.set_result(False)
        return True

    def _forget(self, t: _Tenant, fut: asyncio.Future[bool]) -> None:
        i = next((i for i, (_, f) in enumerate(t.waiters) if f is fut), None)
        if i is None:  # already taken out by release or _push_out
            return
        del t.waiters[i]
        self._gone()
        if not t.waiters:
            self._emptied(t)

    def _gone(self) -> None:
        self.waiting -= 1
        if not self.waiting:
            self._last = None  # the next hand-over starts a new stretch: no gap to measure

    def _emptied(self, t: _Tenant) -> None:
        """`t` has no waiter left outside release: its heap entry is stale; swept out once stale
        entries outnumber the tenants waiting."""
        t.entry = -1
        self._sweep()

    def _sweep(self) -> None:
        """Drops the heap's stale entries once they outnumber the tenants waiting."""
        heap = self._heap
        if len(heap) > 2 * self.waiting + 16:
            heap[:] = [e for e in heap if e[1] == e[2].entry]
            heapq.heapify(heap)

    def _prune(self) -> None:
        """Forget idle tenants: those whose usage has decayed to almost nothing first, then, if
        that was not enough, every idle one."""
        clock = self._vclock_at(self._clock())
        tenants = self._tenants
        for name in [n for n, t in tenants.items() if not t.waiters and t.key - clock < -3.0]:
            del tenants[name]
        if len(tenants) >= 2 * self.max_queue + 16:
            for name in [n for n, t in tenants.items() if not t.waiters]:
                del tenants[name]

    def queued_by(self) -> dict[str, int]:
        """Waiters per tenant (tests, debugging)."""
        return {n: len(t.waiters) for n, t in self._tenants.items() if t.waiters}

    def overloaded(self, why: str) -> Overloaded:
        return Overloaded(
            f"service {self.name!r} is at its limit of {self.max_inflight} requests in flight and {why}",
            headers={"Retry-After": RETRY_AFTER},
        )


class Unlimited:
    """The limiter of a service without `limits.max_inflight`: always a slot, nothing to count."""

    __slots__ = ("name",)
    inflight = 0
    max_inflight = None
    waiting = 0
    fair = ONE_QUEUE

    def __init__(self, name: str) -> None:
        self.name = name

    def try_acquire(self) -> bool:
        return True

    async def acquire(self, tenant: str = "") -> None:
        return None

    def release(self) -> None:
        return None
