"""The request log's write path alone: batches of real rows written to a fresh SQLite file through
the store the gateway builds (state/lazy.py lazy_request_log_store), at a row budget the warm-up
fills. Prints the CPU per row on the event loop's thread (the hand-off) and on the others (the
writer's SQLite work: user and system time).

    taskset -c 1 .venv/bin/python bench/request_log_write.py [--batch 500] [--batches 300] [--max-rows 20000]"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
import uuid

from clawdbot.core.context import RequestContext
from clawdbot.observability.request_log import build_row
from clawdbot.state.lazy import lazy_request_log_store


def thread_times() -> dict[int, tuple[int, int]]:
    """utime, stime (clock ticks) of each thread of this process."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out[int(tid)] = (int(fields[11]), int(fields[12]))
    return out


async def main(a: argparse.Namespace) -> None:
    ctx = RequestContext("r", model="mock-model", service="mock", upstream_model="mock-model", prompt_tokens=3,
                         completion_tokens=16)
    ctx.principal = "master"
    ctx.attempts.append({"service": "mock", "model": "mock-model", "where": "mock/mock-model", "ok": True,
                         "fallback": False, "error": None, "status": 200, "ms": 1.0})

    def batch() -> list[tuple[object, ...]]:
        rows = []
        for _ in range(a.batch):
            ctx.request_id = uuid.uuid4().hex
            rows.append(build_row(ctx, "POST", "/v1/chat/completions", 200))
        return rows

    batches = [batch() for _ in range(10)]
    store = lazy_request_log_store(f"sqlite:///{tempfile.mkdtemp()}/bench.db", a.max_rows, 168)
    warm = a.max_rows // a.batch + 10  # past the budget: the ring empties a segment as it goes
    for i in range(warm):
        await store.write(batches[i % 10])
    before, main_cpu, wall = thread_times(), time.thread_time(), time.perf_counter()
    for i in range(a.batches):
        await store.write(batches[i % 10])
    main_cpu, wall = time.thread_time() - main_cpu, time.perf_counter() - wall
    after, me, hz = thread_times(), threading.get_native_id(), os.sysconf("SC_CLK_TCK")
    rows = a.batch * a.batches
    user = sum(after[t][0] - before.get(t, (0, 0))[0] for t in after if t != me) / hz
    system = sum(after[t][1] - before.get(t, (0, 0))[1] for t in after if t != me) / hz
    print(f"batches of {a.batch}: event loop {main_cpu / rows * 1e6:.2f} us/row; writer {user / rows * 1e6:.2f} "
          f"user + {system / rows * 1e6:.2f} system us/row; wall {wall / rows * 1e6:.2f} us/row")
    await store.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--max-rows", type=int, default=20_000)
    asyncio.run(main(ap.parse_args()))
