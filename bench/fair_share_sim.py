"""The fair-share benchmark's load on the limiter alone, in virtual time: the same tenants and rates
as bench/fair_share.py (B..E steady, A at 10x in bursts) driving routing/limiter.py's Limiter
directly, on an asyncio loop whose clock jumps to the next timer instead of sleeping. Hours of load
take seconds and are the same run after run (seeded), so a change to the queue's policy can be
judged on many seeds and load levels before the real benchmark; no gateway, HTTP or client noise.

    .venv/bin/python bench/fair_share_sim.py [--rate 12] [--slots 4] [--delay-ms 50] [--jitter 0]
                                             [--rounds 10] [--seconds 30] [--seeds 3]
                                             [--queues fifo,fair,oracle]

Rounds alternate a steady and a burst phase of `--seconds` each (5 s apart), as the real benchmark's
interleaved rounds do. Printed per queue (FIFO, fair share, and with `--queues ...,oracle` a queue
told who floods: the floor for any queue that does not pre-empt) and seed: the p99 wait of B..E together
in each phase, the ratio, the worst single tenant's ratio, and B..E's refusals."""

from __future__ import annotations

import argparse
import asyncio
import collections
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


async def run(queue: str, a: argparse.Namespace, seed: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    lim: Limiter | Oracle = Oracle(a.slots) if queue == "oracle" else Limiter(
        "s", a.slots, max_queue=64, timeout=30.0, fair=FairShare("key") if queue == "fair" else ONE_QUEUE,
        clock=loop.time)
    arrivals, service = random.Random(seed), random.Random(seed + 7)
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

    async def tenant(phase: str, name: str, rate: float) -> None:
        start, at = loop.time(), 0.0
        while True:
            at += arrivals.expovariate(rate)
            if at > a.seconds:
                return
            await asyncio.sleep(max(0.0, start + at - loop.time()))
            tasks.append(asyncio.create_task(one(phase, name)))

    for r in range(a.rounds):
        for phase in ("steady", "burst") if r % 2 == 0 else ("burst", "steady"):
            rates = {t: a.rate for t in OTHERS} | ({"A": a.rate * 10} if phase == "burst" else {})
            await asyncio.gather(*(tenant(phase, t, rate) for t, rate in rates.items()))
            await asyncio.gather(*tasks)
            tasks.clear()
            await asyncio.sleep(5.0)
    both = {ph: p99([w for t in OTHERS for w in waits[(ph, t)]]) for ph in ("steady", "burst")}
    worst = max(p99(waits[("burst", t)]) / max(p99(waits[("steady", t)]), 1.0) for t in OTHERS)
    return {**both, "ratio": both["burst"] / max(both["steady"], 1.0), "worst": worst, "refused": refused["burst"]}


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
    a = ap.parse_args()
    if not (0 < a.rate <= 1000 and 1 <= a.slots <= 1024 and a.delay_ms > 0 and 0 <= a.jitter < 1
            and 1 <= a.rounds <= 100 and 0 < a.seconds <= 100_000 and 1 <= a.seeds <= 20
            and set(a.queues.split(",")) <= {"fifo", "fair", "oracle"}):
        ap.error("out of the bounds this simulation runs in")
    print("| queue | seed | B..E p99 steady (ms) | B..E p99 burst (ms) | ratio | worst tenant's ratio | B..E refused |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for queue in a.queues.split(","):
        for seed in range(a.seeds):
            loop = virtual_loop()
            try:
                r = loop.run_until_complete(run(queue, a, seed))
            finally:
                loop.close()
            print(f"| {queue} | {seed} | {r['steady']:.0f} | {r['burst']:.0f} | "
                  f"{r['ratio']:.2f}x | {r['worst']:.2f}x | {r['refused']} |", flush=True)


if __name__ == "__main__":
    main()
