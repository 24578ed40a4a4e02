"""Micro-benchmarks of the cache plugins' CPU work per request (docs/plugin-cache.md): the exact
cache's key and memory lookups on a typical 1 KB request, a semantic lookup (an exact scan: one
float32 matrix-vector product) over 1,000 and 10,000 stored 384-dim vectors, and a semantic store
into a full partition. Prints microseconds per call, best of 5; then the memory a semantic entry
takes, traced (tracemalloc) against what `max_bytes` counts.

    uv run python bench/cache_bench.py [--number N] [--dims 384] [--redis redis://127.0.0.1:6379/0]

`--redis`: also a semantic search over 1,000 vectors kept in Redis (the partition's live ids, the
vectors this process has not unpacked yet, a scan in-process), the first of a process and a warm
one, under a throwaway key prefix deleted afterwards."""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import itertools
import math
import random
import timeit
import tracemalloc
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec

from clawdbot.core.context import RequestContext
from clawdbot.core.types import ChatRequest, ChatResponse, Message, Usage
from clawdbot.plugins.cache import CachePlugin, CacheSettings, request_key
from clawdbot.plugins.cache_store import RedisGuard
from clawdbot.plugins.vector_store import MemoryVectorStore, RedisVectorStore, Vector, unit
from clawdbot.tenancy.principal import Principal

SYSTEM = "You are a helpful assistant for an online bookshop. Answer briefly and politely. " * 4
QUESTION = ("I ordered three books last week, order 12345, and only two arrived. The missing one is a hardcover "
            "edition of a cookbook. Can you tell me whether it was shipped separately, and if not, how I can get "
            "a refund or a replacement? I would prefer a replacement if it can arrive before the end of the month. "
            "Thanks a lot for your help with this, I have been a customer for years. ")
REQUEST = ChatRequest("gpt-4o-mini", [Message("system", SYSTEM), Message("user", QUESTION)], temperature=0.2,
                      max_tokens=256, stream=True)
ANSWER = ChatResponse("chatcmpl-1", "gpt-4o-mini", 1, Message("assistant", "Your third book ships separately. " * 8),
                      "stop", Usage(300, 80))
WHO = Principal(kind="key", key_id="k_1", user_id="u_1", team_id="t_1")


class _Host:
    redis_url = None
    redis_prefix = "clawdbot:"
    data_dir = config_dir = "."

    async def embed(self, model: str, inputs: list[str], ctx: RequestContext) -> list[list[float]]:
        raise NotImplementedError


def drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that awaits nothing but asyncio.sleep(0), without an event loop."""
    try:
        while True:
            coro.send(None)
    except StopIteration as stop:
        return stop.value


def ctx() -> RequestContext:
    return RequestContext(request_id="r", identity=WHO)


def random_unit(dims: int, rng: random.Random) -> Vector:
    v = unit([rng.gauss(0.0, 1.0) for _ in range(dims)])
    assert v is not None
    return v


def ident(i: int) -> bytes:
    """An entry id as the plugin makes them: 16 bytes of blake2b."""
    return hashlib.blake2b(i.to_bytes(8, "little"), digest_size=16).digest()


def memory_store(n: int, dims: int) -> tuple[MemoryVectorStore, Vector]:
    rng = random.Random(n)
    store = MemoryVectorStore(max_entries=n, max_total=n)
    for i in range(n):
        store.put(b"p", ident(i), random_unit(dims, rng), b"answer", 3600)
    return store, random_unit(dims, rng)


def storing(store: MemoryVectorStore, dims: int) -> Callable[[], object]:
    """A put into the full partition of `store`: the new entry appended, the least recently used
    evicted (its row takes the last one)."""
    vector = random_unit(dims, random.Random(0))
    ids = map(ident, itertools.count(1 << 40))
    return lambda: store.put(b"p", next(ids), vector, b"answer", 3600)


def traced_bytes(n: int, dims: int, answer: int = 100) -> tuple[float, float]:
    """(bytes per entry traced by tracemalloc, bytes per entry counted against max_bytes) for a
    partition of `n` entries with `answer`-byte answers."""
    rng = random.Random(1)
    ids = [ident(i) for i in range(n)]
    payload = b"x" * answer
    gc.collect()
    tracemalloc.start()
    try:
        store = MemoryVectorStore(max_entries=n, max_total=n)
        for i in range(n):  # each vector made here, as the plugin makes one per request
            store.put(b"P" * 16, ids[i], random_unit(dims, rng), payload, 3600)
        traced, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return traced / n, store.bytes / n


def cases(dims: int) -> dict[str, tuple[Callable[[], object], int]]:
    """name -> (function, calls per timing run divisor: 1 for micro-cases)."""
    plugin = CachePlugin(msgspec.convert({}, CacheSettings), _Host())
    c = ctx()
    drive(plugin.pre(REQUEST, c))
    drive(plugin.post(ANSWER, c))
    miss = ChatRequest(REQUEST.model, [REQUEST.messages[0], Message("user", QUESTION + "?")],
                       temperature=0.2, max_tokens=256)
    size = len(msgspec.json.encode(REQUEST))
    small, q1 = memory_store(1000, dims)
    large, q10 = memory_store(10_000, dims)
    full, _ = memory_store(1000, dims)
    return {
        f"exact: key (canonical JSON + blake2b), {size} B request": (lambda: request_key(REQUEST, "k:k_1"), 1),
        "exact: RequestContext() alone (in the two below)": (ctx, 1),
        "exact: pre() miss, memory (key, lookup, header, state)": (lambda: drive(plugin.pre(miss, ctx())), 1),
        "exact: pre() hit, memory (key, lookup, decode, Answer)": (lambda: drive(plugin.pre(REQUEST, ctx())), 1),
        f"semantic: search 1,000 x {dims}-dim, memory": (lambda: drive(small.search(b"p", q1, 0.95)), 0),
        f"semantic: search 10,000 x {dims}-dim, memory": (lambda: drive(large.search(b"p", q10, 0.95)), 0),
        f"semantic: put into a full 1,000 x {dims}-dim partition, memory (evicts the LRU)": (storing(full, dims), 1),
    }


async def redis_case(url: str, dims: int, number: int) -> tuple[float, float]:
    """(the first search of a process: every vector fetched and unpacked, a warm one: only the ids)."""
    guard = RedisGuard(url, what="bench", retry_after=1, log_every=60)
    prefix = f"clawdbot-bench:{uuid.uuid4().hex}:"
    rng = random.Random(1)
    try:
        store = RedisVectorStore(guard, prefix, 1000, read_timeout=5, write_timeout=5)
        for i in range(1000):
            assert await store.put(b"p", ident(i), random_unit(dims, rng), b"answer", 600)
        q = random_unit(dims, rng)
        clock = asyncio.get_running_loop().time
        cold = warm = math.inf
        for _ in range(5):
            store = RedisVectorStore(guard, prefix, 1000, read_timeout=5, write_timeout=5)
            t0 = clock()
            await store.search(b"p", q, 0.95)
            cold = min(cold, clock() - t0)
            t0 = clock()
            for _ in range(number):
                await store.search(b"p", q, 0.95)
            warm = min(warm, (clock() - t0) / number)
        return cold, warm
    finally:
        keys = [k async for k in guard.client.scan_iter(match=prefix + "*")]
        if keys:
            await guard.client.delete(*keys)
        await guard.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=20000, help="calls per timing run (micro-cases)")
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--redis", metavar="URL", help="also time a semantic search over 1,000 vectors in Redis")
    args = parser.parse_args()
    print("| operation | us/call (best of 5) |\n|---|---:|")
    for name, (fn, micro) in cases(args.dims).items():
        number = args.number if micro else 5
        best = min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6
        print(f"| {name} | {best:,.2f} |")
    if args.redis:
        cold, warm = asyncio.run(redis_case(args.redis, args.dims, 5))
        print(f"| semantic: search 1,000 x {args.dims}-dim, Redis, first (ids, HMGET all, unpack, scan) "
              f"| {cold * 1e6:,.2f} |")
        print(f"| semantic: search 1,000 x {args.dims}-dim, Redis, warm (ids, scan) | {warm * 1e6:,.2f} |")
    traced, counted = traced_bytes(1000, args.dims)
    print(f"\n| memory store, 1,000 x {args.dims}-dim entries, 100-byte answers | bytes per entry |\n|---|---:|")
    print(f"| traced (tracemalloc) | {traced:,.0f} |\n| counted against max_bytes | {counted:,.0f} |")


if __name__ == "__main__":
    main()
