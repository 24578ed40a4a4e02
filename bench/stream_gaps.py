"""Gaps between streamed text events at c=1, through a gateway's Anthropic /v1/messages against the
mock's own OpenAI stream (the same 10 chunks, 10 ms apart): the added p50/p99 gap and first-token
time. Used by bench/messages.sh (runs with ../shared/bench's client venv: aiohttp).

    python bench/stream_gaps.py DIRECT_BASE NAME=BASE [NAME=BASE ...] [--streams N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import time

import aiohttp

PROMPT = "Count. mock:delay=0 mock:chunks=10 mock:gap=10"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def one(session: aiohttp.ClientSession, url: str, anthropic: bool) -> tuple[float, list[float], int]:
    if anthropic:
        body = {"model": "mock-model", "max_tokens": 64, "stream": True,
                "messages": [{"role": "user", "content": PROMPT}]}
        path = "/messages"
    else:
        body = {"model": "mock-model", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
        path = "/chat/completions"
    headers = {"Authorization": "Bearer sk-bench", "anthropic-version": "2023-06-01"}
    start = time.perf_counter()
    times: list[float] = []
    async with session.post(url + path, json=body, headers=headers) as r:
        assert r.status == 200, (url, r.status, await r.text())
        buf = b""
        async for data in r.content.iter_any():
            now = time.perf_counter()
            buf += data
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                for line in ev.split(b"\n"):
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        continue
                    d = json.loads(payload)
                    text = (d.get("delta") or {}).get("text") if anthropic else \
                        ((d.get("choices") or [{}])[0].get("delta") or {}).get("content")
                    if text:
                        times.append(now)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return (times[0] - start) * 1000 if times else float("nan"), [g * 1000 for g in gaps], len(times)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("direct")
    ap.add_argument("targets", nargs="+")
    ap.add_argument("--streams", type=int, default=100)
    a = ap.parse_args()
    targets = [("direct", a.direct, False)] + [(t.split("=", 1)[0], t.split("=", 1)[1], True) for t in a.targets]
    res: dict[str, tuple[list[float], list[float], list[int]]] = {n: ([], [], []) for n, _, _ in targets}
    async with aiohttp.ClientSession() as s:
        for i in range(a.streams):  # rotating order, one stream each per round
            for name, url, anth in targets[i % len(targets):] + targets[: i % len(targets)]:
                ttft, gaps, n = await one(s, url, anth)
                res[name][0].append(ttft)
                res[name][1].extend(gaps)
                res[name][2].append(n)
    d_ttft, d_gaps, _ = res["direct"]
    print("| target | added TTFT p50 (ms) | added gap p50 / p99 (ms) | text events per stream |")
    print("|---|---:|---:|---:|")
    for name, _, _ in targets:
        ttft, gaps, counts = res[name]
        print(f"| {name} | {statistics.median(ttft) - statistics.median(d_ttft):.2f} | "
              f"{pct(gaps, 50) - pct(d_gaps, 50):.2f} / {pct(gaps, 99) - pct(d_gaps, 99):.2f} | "
              f"{min(counts)}-{max(counts)} |")


if __name__ == "__main__":
    asyncio.run(main())
