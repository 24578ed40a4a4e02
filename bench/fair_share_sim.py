"""The fair-share benchmark's load on the limiter alone, in virtual time: the same tenants and rates
as bench/fair_share.py (B..E steady, A at 10x in bursts) driving routing/limiter.py's Limiter
directly, on an asyncio loop whose clock jumps to the next timer instead of sleeping. Hours of load
take seconds and are the same run after run (seeded), so a change to the queue's policy can be
judged on many seeds and load levels before the real benchmark; no gateway, HTTP or client noise.

    .venv/bin/python bench/fair_share_sim.py [--rate 12] [--slots 4] [--delay-ms 50] [--jitter 0]
                                             [--rounds 10] [--seconds 30] [--seeds 3]
                                             [--queues fifo,fair,oracle]
    .venv/bin/python bench/fair_share_sim.py --replay GATEWAY_LOG [--queues fair,oracle]
    .venv/bin/python bench/fair_share_sim.py --closed 8 [--seconds 120]

Rounds alternate a steady and a burst phase of `--seconds` each (5 s apart), as the real benchmark's
interleaved rounds do. Printed per queue (FIFO, fair share, and with `--queues ...,oracle` a queue
told who floods: the floor for any queue that does not pre-empt) and seed: the p99 wait of B..E together
in each phase, the ratio, the worst single tenant's ratio, B..E's refusals and their longest wait.

`--replay` takes the arrivals instead from the gateway log a `bench/fair_share.py --keep` run left
(its `fair` service's steady and burst phases: each request's tenant, and its arrival as the access
line's time less its latency; the pauses between rounds shortened to 5 s), so a queue can be judged
on exactly the load the real run had, with the real run's own waits printed beside it.

`--closed N` checks the other side, what the light tenants' priority costs in fairness: B..E as
above, A flooding, and S, a closed-loop client that keeps N requests outstanding (sends the next as
each is answered, or a second after a refusal, so never more than N waiting); printed: the slots
per second each tenant got.
An even split of what B..E leave gives S and A the same."""

from __future__ import annotations

import argparse
import asyncio
import collections
import heapq
import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from clawdbot.routing.fair import ONE_QUEUE, FairShare
from clawdbot.routing.limiter import Limiter

OTHERS = "BCDE"


def virtual_loop() -> asyncio.AbstractEventLoop:
    """An event loop whose time only moves when nothing is ready: by exactly the next timer's wait."""
    loop = asyncio.new_event_loop()
    now = [0.0]
    loop.time = lambda: now[0]  # type: ignore[method-assign]
    selector: Any = loop._selector  # type: ignore[attr-defined]
    select = selector.select

    def jump(timeout: float | None = None) -> Any:
        if timeout:
            now[0] += timeout
        return select(0)

    selector.select = jump
    return loop


class Oracle:
    """The bound for any policy that does not pre-empt: B..E's requests always go before A's (it
    knows who floods), FIFO among them. Not a limiter a gateway could ship (it is told the flooder),
    the floor the shipped one is compared with: a B..E request still waits for a slot to free."""

    def __init__(self, slots: int) -> None:
        self.free = slots
        self.light: collections.deque[asyncio.Future[None]] = collections.deque()
        self.heavy: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self, tenant: str) -> None:
        if self.free > 0 and not self.light and not self.heavy:
            self.free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (self.heavy if tenant == "A" else self.light).append(fut)
        await fut  # the slot is handed over with the future: `free` stays as it was

    def release(self) -> None:
        queue = self.light or self.heavy
        if queue:
            queue.popleft().set_result(None)
        else:
            self.free += 1


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan")


Arrivals = dict[str, list[tuple[float, str]]]  # phase -> (seconds from the phase's first, tenant), in order


def from_log(path: str) -> tuple[Arrivals, dict[tuple[str, str], list[float]]]:
    """A kept fair_share.py log's arrivals at the `fair` service, and the waits the gateway logged."""
    seen: dict[str, list[tuple[float, str]]] = collections.defaultdict(list)
    real: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    with open(path, errors="replace") as f:
        for line in f:
            if '"event":"access"' not in line or ".fair-" not in line:
                continue
            rec = json.loads(line)
            phase, _, rest = rec["request_id"].partition(".")
            if phase not in ("steady", "burst"):
                continue
            tenant = rest.split("-")[1]
            seen[phase].append((rec["ts"] - rec["latency_ms"] / 1000.0, tenant))
            if rec["status"] == 200:
                real[(phase, tenant)].append(float(rec.get("queue_wait_ms") or 0.0))
    arrivals: Arrivals = {}
    for phase, evs in seen.items():
        evs.sort()
        out, shift, prev = [], 0.0, evs[0][0]
        for at, tenant in evs:
            shift += max(0.0, at - prev - 5.0)  # a pause between rounds: 5 s, as in run()
            prev = at
            out.append((at - evs[0][0] - shift, tenant))
        arrivals[phase] = out
    return arrivals, real


def summary(waits: dict[tuple[str, str], list[float]], refused: int) -> dict[str, Any]:
    both = {ph: p99([w for t in OTHERS for w in waits[(ph, t)]]) for ph in ("steady", "burst")}
    worst = max(p99(waits[("burst", t)]) / max(p99(waits[("steady", t)]), 1.0) for t in OTHERS)
    longest = max((w for t in OTHERS for w in waits[("burst", t)]), default=float("nan"))
    return {**both, "ratio": both["burst"] / max(both["steady"], 1.0), "worst": worst, "refused": refused,
            "longest": longest}


def poisson(a: argparse.Namespace, seed: int) -> list[tuple[tuple[str, str], Arrivals]]:
    """`--rounds` rounds of a steady and a burst phase, alternating which goes first. Each tenant
    draws its next gap when its previous request arrives, all from one generator (the order the
    first version of this simulation, one task per tenant, drew them in)."""
    rng = random.Random(seed)
    rounds = []
    for r in range(a.rounds):
        order = ("steady", "burst") if r % 2 == 0 else ("burst", "steady")
        one: Arrivals = {}
        for phase in order:
            rates = {t: a.rate for t in OTHERS} | ({"A": a.rate * 10} if phase == "burst" else {})
            due = [(rng.expovariate(rate), i, t) for i, (t, rate) in enumerate(rates.items())]
            heapq.heapify(due)
            evs = []
            while due:
                at, i, t = heapq.heappop(due)
                if at > a.seconds:
                    continue
                evs.append((at, t))
                heapq.heappush(due, (at + rng.expovariate(rates[t]), i, t))
            one[phase] = evs
        rounds.append((order, one))
    return rounds


async def run(queue: str, a: argparse.Namespace, seed: int,
              load: list[tuple[tuple[str, str], Arrivals]]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    lim: Limiter | Oracle = Oracle(a.slots) if queue == "oracle" else Limiter(
        "s", a.slots, max_queue=64, timeout=30.0, fair=FairShare("key") if queue == "fair" else ONE_QUEUE,
        clock=loop.time)
    service = random.Random(seed + 7)
    waits: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    refused: collections.Counter[str] = collections.Counter()
    tasks: list[asyncio.Task[None]] = []

    async def one(phase: str, tenant: str) -> None:
        start = loop.time()
        try:
            await lim.acquire(tenant)
        except Exception:  # Overloaded: the queue was full, or it gave its place away
            refused[phase] += tenant != "A"
            return
        waits[(phase, tenant)].append((loop.time() - start) * 1000.0)
        await asyncio.sleep(a.delay_ms / 1000.0 * (1 + a.jitter * (2 * service.random() - 1)))
        lim.release()

    for order, phases in load:
        for phase in order:
            start = loop.time()
            for at, tenant in phases.get(phase, []):
                await asyncio.sleep(max(0.0, start + at - loop.time()))
                tasks.append(asyncio.create_task(one(phase, tenant)))
            await asyncio.gather(*tasks)
            tasks.clear()
            await asyncio.sleep(5.0)
    return summary(waits, refused["burst"])


async def closed(a: argparse.Namespace) -> dict[str, float]:
    """Slots per second per tenant with S keeping `--closed` requests outstanding against A's flood."""
    loop = asyncio.get_running_loop()
    lim = Limiter("s", a.slots, max_queue=64, timeout=30.0, fair=FairShare("key"), clock=loop.time)
    rng, got = random.Random(1), collections.Counter[str]()
    tasks: list[asyncio.Task[bool]] = []

    async def one(tenant: str) -> bool:
        try:
            await lim.acquire(tenant)
        except Exception:  # Overloaded
            return False
        got[tenant] += 1
        await asyncio.sleep(a.delay_ms / 1000.0)
        lim.release()
        return True

    async def poisson(tenant: str, rate: float) -> None:
        while loop.time() < a.seconds:
            await asyncio.sleep(rng.expovariate(rate))
            tasks.append(asyncio.create_task(one(tenant)))

    async def loop_client() -> None:
        while loop.time() < a.seconds:
            if not await one("S"):
                await asyncio.sleep(1.0)  # refused: Retry-After, as the gateway answers

    await asyncio.gather(poisson("A", a.rate * 10), *(poisson(t, a.rate) for t in OTHERS),
                         *(loop_client() for _ in range(a.closed)))
    await asyncio.gather(*tasks)
    return {t: n / a.seconds for t, n in sorted(got.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=12.0, help="requests/s of each of B..E")
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--delay-ms", type=float, default=52.8, help="a request's time (the real bench measured 52.8)")
    ap.add_argument("--jitter", type=float, default=0.0, help="request times uniform in delay x (1 +- jitter)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=30.0, help="per phase and round (virtual)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--queues", default="fifo,fair", help="of fifo, fair (shipped), oracle (B..E always first)")
    ap.add_argument("--replay", metavar="GATEWAY_LOG", help="arrivals from a kept bench/fair_share.py run")
    ap.add_argument("--closed", type=int, default=0, metavar="N", help="S keeps N requests outstanding (fairness)")
    a = ap.parse_args()
    if not (0 < a.rate <= 1000 and 1 <= a.slots <= 1024 and a.delay_ms > 0 and 0 <= a.jitter < 1
            and 1 <= a.rounds <= 100 and 0 < a.seconds <= 100_000 and 1 <= a.seeds <= 20
            and set(a.queues.split(",")) <= {"fifo", "fair", "oracle"}):
        ap.error("out of the bounds this simulation runs in")
    if a.closed:
        if not 1 <= a.closed <= 64:
            ap.error("--closed: 1 .. 64 requests outstanding")
        loop = virtual_loop()
        try:
            rates = loop.run_until_complete(closed(a))
        finally:
            loop.close()
        got = ", ".join(f"{t} {r:.1f}/s" for t, r in rates.items())
        print(f"S with {a.closed} outstanding, {a.seconds:g} s: {got}")
        return
    print("| queue | seed | B..E p99 steady (ms) | B..E p99 burst (ms) | ratio | worst tenant's ratio | B..E refused "
          "| B..E longest (ms) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    if a.replay:
        arrivals, real = from_log(a.replay)
        loads = {0: [(("steady", "burst"), arrivals)]}
        r = summary(real, 0)
        print(f"| the run itself | - | {r['steady']:.0f} | {r['burst']:.0f} | {r['ratio']:.2f}x | {r['worst']:.2f}x "
              f"| - | {r['longest']:.0f} |")
    else:
        loads = {seed: poisson(a, seed) for seed in range(a.seeds)}
    for queue in a.queues.split(","):
        for seed, load in loads.items():
            loop = virtual_loop()
            try:
                r = loop.run_until_complete(run(queue, a, seed, load))
            finally:
                loop.close()
            print(f"| {queue} | {seed} | {r['steady']:.0f} | {r['burst']:.0f} | {r['ratio']:.2f}x | "
                  f"{r['worst']:.2f}x | {r['refused']} | {r['longest']:.0f} |", flush=True)

if __name__ == "__main__":
    main()
