"""The limiter's wait queue shared between tenants (weighted fair share by decayed usage), driven with real
asyncio futures: a test holds the only slot, queues waiters, then frees slots one at a time and
reads the order they were handed out in. Nothing waits on the clock except the one timeout test,
which waits for the timeout itself."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from typing import Any

import pytest

from clawdbot.config.loader import load_config_text
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import GatewayError, Overloaded
from clawdbot.core.types import ChatRequest, ChatResponse
from clawdbot.pipeline.gateway import Gateway
from clawdbot.routing.fair import ONE_QUEUE, FairShare
from clawdbot.routing.limiter import AHEAD_MAX, AHEAD_ROUNDS, LIGHT_RATIO, Limiter
from clawdbot.tenancy.principal import Principal
from tests.routing.fakes import Scripted, request, services


async def turns(n: int = 5) -> None:
    """Let the tasks woken so far run (each hand-over wakes one task: one turn of the loop)."""
    for _ in range(n):
        await asyncio.sleep(0)


class Clock:
    """A millisecond per reading: usage decays the same, run after run."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


class Queue:
    """A limiter of one slot, held by the test, and the order its waiters got the slot in."""

    def __init__(self, fair: FairShare = ONE_QUEUE, max_queue: int = 64, timeout: float = 30.0) -> None:
        self.clock = Clock()
        self.lim = Limiter("s", 1, max_queue=max_queue, timeout=timeout, fair=fair, clock=self.clock)
        assert self.lim.try_acquire()
        self.served: list[str] = []
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def add(self, tenant: str, n: int, first: int = 0) -> None:
        for i in range(first, first + n):
            label = f"{tenant}{i}"
            self.tasks[label] = asyncio.create_task(self._wait(tenant, label))
        await turns()

    def slots(self, n: int) -> Queue:
        """`n` slots, all held by the test."""
        self.lim.max_inflight = n
        for _ in range(n - 1):
            assert self.lim.try_acquire()
        return self

    async def release(self, n: int) -> None:
        """Frees the slot `n` times, each handed to the next in line."""
        for _ in range(n):
            self.lim.release()
            await turns()

    async def cancel_all(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await turns()

    async def _wait(self, tenant: str, label: str) -> None:
        await self.lim.acquire(tenant)
        self.served.append(label)

    async def drain(self) -> list[str]:
        """Frees the slot until nobody waits, then once more: the order served."""
        while self.lim.waiting:
            self.lim.release()
            await turns()
        self.lim.release()
        await turns()
        assert self.lim.inflight == 0 and self.lim.waiting == 0 and self.lim.queued_by() == {}
        return self.served


async def trickle(q: Queue, tenant: str, releases: int, every: int = 1) -> None:
    """`tenant` has one request waiting at a time, the next arriving `every` releases after the one
    before was served; after `releases` releases every task still waiting is cancelled."""
    n, since = 0, 0
    await q.add(tenant, 1)
    for _ in range(releases):
        q.lim.release()
        await turns()
        if f"{tenant}{n}" in q.served:
            since += 1
            if since == every:
                n, since = n + 1, 0
                await q.add(tenant, 1, first=n)
    await q.cancel_all()


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def order(weights: dict[str, float], queued: list[tuple[str, int]], default: float = 1.0) -> list[str]:
    async def main() -> list[str]:
        q = Queue(FairShare("key", weights, default), max_queue=1000)
        for tenant, n in queued:
            await q.add(tenant, n)
        return await q.drain()

    result: list[str] = run(main())
    return result


def test_equal_weights_take_turns_while_both_have_a_backlog() -> None:
    # one slot: a tenant with more than one waiter has a backlog. A and B take turns; B's last
    # request (no backlog left) then goes in arrival order, ahead of A's backlog
    assert order({}, [("A", 6), ("B", 3)]) == ["A0", "B0", "A1", "B1", "B2", "A2", "A3", "A4", "A5"]
    # B (one request, no backlog) first, though A0 came before it; A and C take turns; C's last before A's
    assert order({}, [("A", 3), ("B", 1), ("C", 2)]) == ["B0", "A0", "C0", "C1", "A1", "A2"]


def test_without_a_backlog_arrival_order_counts_up_to_a_few_rounds_ahead() -> None:
    # four slots: up to four waiters is no backlog; B's cluster of three goes in arrival order before
    # the flood's backlog, whose tenant has used the service as little (nothing yet)
    async def main() -> list[str]:
        q = Queue(FairShare("key")).slots(4)
        await q.add("A", 12)
        await q.add("B", 3)
        await q.add("C", 1)
        while q.lim.waiting:
            q.lim.release()
            await turns()
        return q.served

    served = run(main())
    assert served[:5] == ["B0", "B1", "B2", "C0", "A0"]
    # a light tenant is held to AHEAD_ROUNDS rounds of the slots beyond the least usage: B, always
    # without a backlog (one request at a time), against A's flood on one slot
    async def steady() -> int:
        q = Queue(FairShare("key"))
        await q.add("A", 40)
        await trickle(q, "B", 30)
        return sum(label[0] == "B" for label in q.served)

    assert 15 <= run(steady()) <= 15 + AHEAD_ROUNDS


def test_on_a_big_service_the_lead_is_capped_in_hand_overs() -> None:
    # 64 slots: four rounds would be 256 hand-overs, most of what usage remembers (~300); the lead
    # is capped at AHEAD_MAX, so B, which has just had 40 slots, no longer goes first by arrival
    async def main() -> list[str]:
        q = Queue(FairShare("key")).slots(64)  # all held
        await q.add("B", 40)
        await q.release(40)
        await q.add("B", 1, first=40)
        await q.add("A", 1)
        q.lim.release()
        await turns()
        return q.served[40:]

    assert AHEAD_MAX < 40 < AHEAD_ROUNDS * 64
    assert run(main()) == ["A0"]


def test_a_light_tenant_far_below_the_flood_keeps_arrival_order_beyond_its_lead() -> None:
    # one slot. A floods and has had 20 slots; D has had 8 (more than AHEAD_ROUNDS over C, which has
    # had none, but under LIGHT_RATIO of A's usage): D's request, which came before C's, goes
    # first. Once D's usage nears A's, C's later request goes before D's again
    async def main(d_slots: int) -> list[str]:
        q = Queue(FairShare("key"))
        await q.add("A", 60)
        await q.release(20)
        for i in range(d_slots):  # D one request at a time: each goes before A's backlog
            await q.add("D", 1, first=i)
            await q.release(1)
        assert q.served[20:] == [f"D{i}" for i in range(d_slots)]
        await q.add("D", 1, first=d_slots)
        await q.add("C", 1)
        await q.release(2)
        await q.cancel_all()
        return q.served[20 + d_slots:]

    assert AHEAD_ROUNDS < 8 < LIGHT_RATIO * 20
    assert run(main(8)) == ["D8", "C0"]
    assert LIGHT_RATIO * 20 < 18  # D's usage near A's: the lead over C's counts again
    assert run(main(18)) == ["C0", "D18"]


def test_a_light_tenants_cluster_over_the_slots_keeps_arrival_order() -> None:
    # four slots. A floods (40 waiting) and has had 20 slots. C's six, more than the slots but
    # under half of A's queue and under LIGHT_RATIO of its usage, are no backlog: they go in
    # arrival order, before B's later request (with a backlog counted against the slots alone, C's
    # six fell back to least usage and B's later request went first)
    async def main() -> list[str]:
        q = Queue(FairShare("key")).slots(4)
        await q.add("A", 40)
        await q.release(20)
        await q.add("B", 1)
        await q.release(1)
        assert q.served[20:] == ["B0"]
        await q.add("C", 6)
        await q.add("B", 1, first=1)
        await q.release(7)
        await q.cancel_all()
        return q.served[21:]

    assert run(main()) == ["C0", "C1", "C2", "C3", "C4", "C5", "B1"]


def test_a_short_queue_that_has_used_as_much_as_the_flood_takes_turns_with_it() -> None:
    # one slot. A floods and has had 20 slots; S then queues 23 and, having used nothing, takes
    # most slots until its usage has caught up with A's. Its last waiters (more than the slots,
    # under half of A's queue) no longer go first by arrival: S is not under LIGHT_RATIO of A's
    # usage, so they are a backlog and S and A take turns by usage (the price of a short queue
    # going first is bounded by LIGHT_RATIO and the lead, not by the flood's queue length)
    async def main() -> list[str]:
        q = Queue(FairShare("key"))
        await q.add("A", 60)
        await q.release(20)
        await q.add("S", 23)
        while sum(label[0] == "S" for label in q.served) < 20:
            await q.release(1)
        mark = len(q.served)
        await q.release(6)
        await q.cancel_all()
        return q.served[mark:]

    # turns; S's very last (one waiter: no backlog) within its lead, in arrival order. Exempting
    # every queue under half the longest from the backlog test served S20-S22 first
    assert run(main()) == ["A20", "S20", "A21", "S21", "S22", "A22"]


def test_weights_2_to_1() -> None:
    # the same usage at first (none): turns; then two slots of A's per one of B's
    assert order({"A": 2}, [("A", 6), ("B", 3)]) == ["A0", "B0", "A1", "B1", "B2", "A2", "A3", "A4", "A5"]
    served = "".join(label[0] for label in order({"A": 2}, [("A", 40), ("B", 40)]))
    assert served[:30].count("A") == 20 and served[4:28] == "AAB" * 8
    # the heavier tenant arriving second gets its two slots for every one as well (A's last request,
    # without a backlog, goes in arrival order)
    assert order({"B": 2}, [("A", 3), ("B", 6)]) == ["A0", "B0", "B1", "A1", "A2", "B2", "B3", "B4", "B5"]


def test_fractional_weights_keep_their_ratio() -> None:
    # 1.5 : 1 -> three slots for A for every two of B
    served = "".join(label[0] for label in order({"A": 1.5}, [("A", 40), ("B", 40)]))
    assert served[:50].count("A") == 30 and served[:50].count("B") == 20
    # 0.5 : 1 (B at the default weight) is 1 : 2
    served = "".join(label[0] for label in order({"A": 0.5}, [("A", 40), ("B", 40)]))
    assert served[:30].count("A") == 10 and served[:30] == "ABB" * 10
    # only fractional weights: the ratios count, not the size (0.25 : 0.5 is 1 : 2)
    assert "".join(label[0] for label in order({"A": 0.25}, [("A", 40), ("B", 40)], default=0.5))[:30] == "ABB" * 10


def test_long_run_shares_follow_the_weights() -> None:
    served = order({"A": 3, "C": 0.5}, [("A", 60), ("B", 60), ("C", 60)])
    first = served[:45]  # all three still waiting: shares 3 : 1 : 0.5
    counts = {t: sum(1 for s in first if s[0] == t) for t in "ABC"}
    assert counts == {"A": 30, "B": 10, "C": 5}


def test_a_tenant_that_used_less_goes_first_until_it_has_caught_up() -> None:
    async def main() -> None:
        q = Queue(FairShare("key"))
        await q.add("A", 8)
        for _ in range(2):  # A alone: its first two
            q.lim.release()
            await turns()
        await q.add("B", 1)  # B and C start waiting: served next, not after A's backlog
        await q.add("C", 1)
        await q.release(4)
        assert q.served == ["A0", "A1", "B0", "C0", "A2", "A3"]
        await q.add("B", 3, first=1)  # B has had one slot, A four: B's three go first
        assert await q.drain() == ["A0", "A1", "B0", "C0", "A2", "A3", "B1", "B2", "B3", "A4", "A5", "A6", "A7"]

    run(main())


def test_usage_decays_so_a_pause_is_a_fresh_start() -> None:
    async def main() -> list[str]:
        q = Queue(FairShare("key"))
        await q.add("A", 6)
        await q.drain()  # A alone: six slots
        q.served.clear()
        assert q.lim.try_acquire()
        q.clock.now += 60.0  # a minute later: over a hundred memories (at least 0.5 s each)
        await q.add("A", 4, first=6)
        await q.add("B", 4)
        return await q.drain()

    # A's six slots are forgotten: B (never served) first, then turns while both have a backlog;
    # without the decay B0, B1, B2 first
    assert run(main())[:4] == ["B0", "A6", "B1", "A7"]


def test_arriving_one_request_at_a_time_earns_no_priority() -> None:
    async def main() -> list[str]:
        # A, C, D flood; B (weight 2) has one request at a time, the next arriving one slot after
        # its previous was served: each time its queue is empty when its turn comes
        q = Queue(FairShare("key", {"B": 2}))
        for t in "ACD":
            await q.add(t, 20)
        await trickle(q, "B", 30, every=2)
        return q.served

    served = run(main())
    # B's share is 2 of every 5 slots, and having no backlog it may run AHEAD_ROUNDS rounds of the
    # one slot ahead; if a tenant's usage were forgotten whenever its queue emptied, each of its
    # requests would start at the floor and go first (every other slot)
    assert sum(s[0] == "B" for s in served) <= 30 * 2 // 5 + AHEAD_ROUNDS
    assert sum(s[0] == "B" for s in served) >= 30 // 5


def test_one_tenant_is_a_fifo_and_so_is_fair_share_off() -> None:
    assert order({"A": 0.3}, [("A", 5)]) == ["A0", "A1", "A2", "A3", "A4"]

    async def off() -> list[str]:
        q = Queue(ONE_QUEUE)
        await q.add("A", 2)
        await q.add("B", 2)
        await q.add("A", 1, first=2)
        return await q.drain()

    assert run(off()) == ["A0", "A1", "B0", "B1", "A2"]  # every request the same tenant: arrival order


def test_a_lone_tenant_still_fills_the_whole_queue_then_is_refused() -> None:
    async def main() -> None:
        q = Queue(FairShare("key"), max_queue=3)
        await q.add("A", 3)
        with pytest.raises(Overloaded) as info:
            await q.lim.acquire("A")
        assert "3 requests are already waiting" in info.value.message and info.value.status == 503
        assert await q.drain() == ["A0", "A1", "A2"]

    run(main())


def test_cancelled_waiters_in_the_middle_leave_without_a_trace() -> None:
    async def main() -> None:
        q = Queue(FairShare("key"))
        await q.add("A", 3)
        await q.add("B", 3)
        q.tasks["A1"].cancel()
        q.tasks["B0"].cancel()
        await turns()
        assert q.lim.waiting == 4 and q.lim.queued_by() == {"A": 2, "B": 2}
        # A0 (both have a backlog, neither has used the slot: the first to wait), then A2 (no backlog
        # left), then B's
        assert await q.drain() == ["A0", "A2", "B1", "B2"]

    run(main())


def test_a_waiter_cancelled_just_before_a_release_is_skipped() -> None:
    async def main() -> None:
        q = Queue(FairShare("key"))
        await q.add("A", 2)
        await q.add("B", 2)
        q.tasks["A0"].cancel()  # its future is cancelled now; its task has not run yet
        q.lim.release()  # ...so the hand-over (to A: both have a backlog) finds it first in A's line, skips it
        await turns()
        assert q.served == ["A1"] and q.tasks["A0"].cancelled()
        assert await q.drain() == ["A1", "B0", "B1"]

    run(main())


def test_a_whole_tenant_cancelled_leaves_the_queue() -> None:
    async def main() -> None:
        q = Queue(FairShare("key"))
        await q.add("A", 2)
        await q.add("B", 2)
        await q.add("C", 1)
        for label in ("B0", "B1"):
            q.tasks[label].cancel()
        await turns()
        assert q.lim.queued_by() == {"A": 2, "C": 1}
        assert await q.drain() == ["C0", "A0", "A1"]  # C has no backlog: first

    run(main())


def test_a_waiter_timing_out_in_the_middle() -> None:
    async def main() -> None:
        q = Queue(FairShare("key"))
        await q.add("A", 1)
        q.lim.timeout = 0.05  # only the next waiter's wait is short
        await q.add("B", 1)
        q.lim.timeout = 30.0
        await q.add("A", 1, first=1)
        await q.add("B", 1, first=1)
        with pytest.raises(Overloaded, match=r"no slot freed up within 0\.05s"):
            await q.tasks["B0"]
        assert q.lim.queued_by() == {"A": 2, "B": 1}
        # the request that gave up cost B nothing: its one left (no backlog) goes before A's two
        assert await q.drain() == ["B1", "A0", "A1"]

    run(main())


def test_a_slot_handed_over_as_the_waiter_gives_up_is_passed_on() -> None:
    async def main() -> None:
        q = Queue(FairShare("key"))
        await q.add("A", 1)
        await q.add("B", 1)
        q.lim.release()  # A0's future gets the slot...
        q.tasks["A0"].cancel()  # ...but its task is cancelled before it runs
        await turns()
        assert q.tasks["A0"].cancelled() and q.served == ["B0"]  # A0 passed the slot to B0
        assert q.lim.inflight == 1 and q.lim.waiting == 0
        q.lim.release()
        assert q.lim.inflight == 0

    run(main())


def test_per_tenant_cap() -> None:
    async def main() -> None:
        q = Queue(FairShare("team", max_per_tenant=2), max_queue=10)
        await q.add("A", 2)
        with pytest.raises(Overloaded, match="2 requests of the same team are already waiting"):
            await q.lim.acquire("A")
        await q.add("B", 2)
        assert q.lim.queued_by() == {"A": 2, "B": 2}
        assert await q.drain() == ["A0", "A1", "B0", "B1"]  # A's last, without a backlog, in arrival order

    run(main())


def test_a_full_queue_pushes_out_the_newest_waiter_of_the_tenant_most_over_its_share() -> None:
    async def main() -> None:
        q = Queue(FairShare("key"), max_queue=4)
        await q.add("A", 4)
        await q.add("B", 1)  # full: A3 gives its place to B0
        with pytest.raises(Overloaded, match="gave its place to another tenant"):
            await q.tasks["A3"]
        assert q.lim.queued_by() == {"A": 3, "B": 1}
        with pytest.raises(Overloaded, match="4 requests are already waiting"):
            await q.lim.acquire("A")  # A is the one over its share: refused itself
        await q.add("C", 1)  # A (3 waiting) is further over its share than C would be (1): A2 goes
        with pytest.raises(Overloaded):
            await q.tasks["A2"]
        await q.add("B", 1, first=1)  # A: 2, B: 1, C: 1; B with this one would be 2: no better off than A
        with pytest.raises(Overloaded):
            await q.tasks["B1"]
        assert await q.drain() == ["B0", "C0", "A0", "A1"]  # B and C without a backlog, in arrival order

    run(main())


def test_push_out_counts_the_weights() -> None:
    async def main() -> None:
        q = Queue(FairShare("key", {"A": 3}), max_queue=4)
        await q.add("A", 3)
        await q.add("B", 1)
        with pytest.raises(Overloaded):  # A holds 3 places for a weight of 3: within its share
            await q.lim.acquire("B")
        await q.add("C", 1)  # C would hold 1 for a weight of 1, A 3/3 = 1: no better off, refused
        with pytest.raises(Overloaded):
            await q.tasks["C0"]
        # A's three are no backlog for a weight of 3 (one slot x 3): all in arrival order, then B
        assert await q.drain() == ["A0", "A1", "A2", "B0"]

    run(main())


def test_random_arrivals_cancellations_and_releases_never_leak_a_slot() -> None:
    async def main() -> None:
        rng = random.Random(17)
        lim = Limiter("s", 3, max_queue=12, timeout=30.0,
                      fair=FairShare("key", {"A": 2.5, "B": 0.4}, max_per_tenant=8))
        held = 0  # slots this test holds (a waiter that got one hands it to the test)
        tasks: list[asyncio.Task[None]] = []

        async def waiter(tenant: str) -> None:
            nonlocal held
            await lim.acquire(tenant)
            held += 1

        for _ in range(2000):
            op = rng.random()
            if op < 0.45:
                if lim.try_acquire():
                    held += 1
                else:
                    tasks.append(asyncio.create_task(waiter(rng.choice("ABCDE"))))
            elif op < 0.55 and tasks:
                rng.choice(tasks).cancel()
            elif held:
                held -= 1
                lim.release()
            await turns(rng.randint(0, 2))
            assert 0 <= lim.inflight <= lim.max_inflight and lim.waiting <= lim.max_queue
            assert lim.waiting == sum(lim.queued_by().values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert lim.inflight == held and lim.waiting == 0 and lim.queued_by() == {}
        for _ in range(held):
            lim.release()
        assert lim.inflight == 0

    run(main())


def test_the_tenant_of_a_request() -> None:
    team_key = Principal(kind="key", key_id="k_1", user_id="u_1", team_id="t_1")
    lone_key = Principal(kind="key", key_id="k_2")

    def ctx(p: Principal | None) -> RequestContext:
        return RequestContext("r", principal=p.name if p is not None else None, identity=p)

    by_key, by_user, by_team = FairShare("key"), FairShare("user"), FairShare("team")
    assert [by_key.tenant(ctx(team_key)), by_user.tenant(ctx(team_key)), by_team.tenant(ctx(team_key))] == [
        "k_1", "u_1", "t_1"]
    assert {f.tenant(ctx(lone_key)) for f in (by_key, by_user, by_team)} == {"k_2"}  # a tenant of its own
    master = RequestContext("r", principal="master", identity=Principal(kind="master"))
    assert by_team.tenant(master) == "master"
    assert by_key.tenant(ctx(None)) == "anonymous"  # no master key configured
    assert ONE_QUEUE.tenant(ctx(team_key)) == ""


class Recording(Scripted):
    """Records which key each call came from, in the order the calls reached it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.seen: list[str | None] = []

    async def chat(self, req: ChatRequest, ctx: RequestContext) -> ChatResponse:
        self.seen.append(ctx.principal)
        return await super().chat(req, ctx)


def one_service(limits: str) -> tuple[Gateway, Recording]:
    rec = Recording("a")
    config = load_config_text(services("a", extra=f", limits: {limits}") + "models:\n  m: [a]\n")
    return Gateway(config, {"a": rec}), rec


def test_through_the_gateway_the_queue_takes_turns_by_key() -> None:
    gw, rec = one_service("{max_inflight: 1, max_queue: 8, fair_share: {weights: {k_b: 2}}}")
    up = gw.runtime.upstreams["a"]
    lim = up.limiter
    assert isinstance(lim, Limiter)

    async def ask(key: str) -> RequestContext:
        ctx = RequestContext("r", principal=key)
        await gw.chat(request("m"), ctx)
        gw.finish(ctx)
        return ctx

    async def main() -> None:
        gate = asyncio.Event()
        rec.gate = gate
        first = asyncio.create_task(ask("k_a"))
        await rec.entered.wait()
        flood = [asyncio.create_task(ask("k_a")) for _ in range(4)]
        await turns(20)
        others = [asyncio.create_task(ask("k_b")) for _ in range(3)]
        await turns(20)
        assert lim.queued_by() == {"k_a": 4, "k_b": 3}
        gate.set()
        done = await asyncio.gather(first, *flood, *others)
        # k_a came first; k_b (weight 2) then takes two slots for every one of k_a's, and its last
        # two (no backlog for a weight of 2) go in arrival order, before k_a's backlog
        assert rec.seen == ["k_a", "k_a", "k_b", "k_b", "k_b", "k_a", "k_a", "k_a"]
        assert done[0].queue_wait_ms == 0 and all(c.queue_wait_ms > 0 for c in done[1:])
        assert up.limiter.inflight == 0 and up.limiter.waiting == 0
        assert sum(up.stats.queue_wait.counts) == 7

    asyncio.run(main())


def test_through_the_gateway_a_full_queue_refuses_the_flooding_key() -> None:
    gw, rec = one_service("{max_inflight: 1, max_queue: 2}")
    up = gw.runtime.upstreams["a"]

    async def ask(key: str) -> None:
        ctx = RequestContext("r", principal=key)
        try:
            await gw.chat(request("m"), ctx)
        finally:
            gw.finish(ctx)

    async def main() -> None:
        gate = asyncio.Event()
        rec.gate = gate
        first = asyncio.create_task(ask("k_a"))
        await rec.entered.wait()
        flood = [asyncio.create_task(ask("k_a")) for _ in range(2)]
        await turns(20)
        late = asyncio.create_task(ask("k_b"))  # pushes out k_a's newest
        with pytest.raises(GatewayError) as info:
            await flood[1]
        assert info.value.status == 503 and info.value.headers["Retry-After"] == "1"
        gate.set()
        await asyncio.gather(first, flood[0], late)
        assert rec.seen == ["k_a", "k_a", "k_b"] and up.limiter.inflight == 0

    asyncio.run(main())
