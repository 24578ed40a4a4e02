"""Where `semantic_cache` keeps its vectors (docs/plugin-cache.md): a partition per (scope, model,
embedding model, conversation context); a search is an exact scan of one partition.

Vectors are normalised once, when stored (and the query once per search), so cosine similarity is
1 - |a - b|^2 / 2, and math.dist computes |a - b| in C. It wants tuples of Python floats: kept so
in memory (32 bytes a dimension, 12 KiB for 384), a comparison costs about 5 us at 384 dimensions,
where sum(map(mul, ...)) or compact float32 arrays (which box every element again) cost 15-30 us.
A search is O(entries x dimensions): `max_entries` per partition bounds it (1,000 x 384: about
5 ms; bench/cache_bench.py), scanned CHUNK entries at a time with the event loop let run between.

    MemoryVectorStore   partitions of LRU entries, bounded per partition, in total and in bytes
    RedisVectorStore    per partition three keys: `<p>semcache:<part>:v` (hash id -> packed
                        little-endian float32 vector), `:r` (hash id -> expiry + encoded answer) and
                        `:z` (sorted set id -> expiry: the oldest go first). One Lua script inserts,
                        drops the expired and evicts the oldest beyond max_entries, atomically, so
                        replicas never grow a partition past it. A search reads the live ids
                        (ZRANGEBYSCORE, at most max_entries), fetches the vectors this process has
                        not unpacked yet (HMGET; a VectorCache keeps them) and scans in-process: no
                        RediSearch is assumed.

Entry ids are a hash of the embedded text: the same text twice is one entry, and a lookup of a
text already stored needs no embedding (`get_exact`)."""

from __future__ import annotations

import asyncio
import math
import struct
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from functools import lru_cache, partial
from typing import Any

from clawdbot.plugins.cache_store import Clock, RedisGuard

Vector = tuple[float, ...]
_EXPIRES = struct.Struct("<d")
# A partition is scanned this many entries at a time, the event loop let run in between (a 10,000
# entry scan never holds it for more than a few milliseconds at once).
CHUNK = 512
FETCH = 256  # vectors a Redis search fetches per call (HMGET)
# What one memory entry costs beyond its payload: its vector's float objects and tuple slots (32
# bytes a dimension) come on top (the _Entry, the two OrderedDict nodes, the ids).
ENTRY_OVERHEAD = 400


def normalise(vector: Sequence[float]) -> Vector | None:
    """The unit vector, or None for a zero, empty or non-finite vector."""
    if not vector:
        return None
    try:
        norm = math.sqrt(math.fsum(x * x for x in vector))
    except (TypeError, OverflowError):
        return None
    if not norm or not math.isfinite(norm):
        return None
    return tuple(x / norm for x in vector)


def cosine(a: Vector, b: Vector) -> float:
    """Of two unit vectors (normalise()): 1 - |a - b|^2 / 2, computed by math.dist in C (5x faster
    than sum(map(mul, a, b)) on tuples of floats); 0.0 when their dimensions differ."""
    if len(a) != len(b):
        return 0.0
    d = math.dist(a, b)
    return 1.0 - d * d / 2.0


def best(query: Vector, candidates: Iterable[tuple[bytes, Vector]]) -> tuple[bytes | None, float]:
    """The candidate most similar to `query` (all unit vectors) and the similarity; vectors of
    another dimension are skipped."""
    top_id, top = None, math.inf
    n, dist = len(query), math.dist
    for id_, vec in candidates:
        if len(vec) != n:
            continue
        d = dist(query, vec)
        if d < top:
            top_id, top = id_, d
    return top_id, (1.0 - top * top / 2.0) if top_id is not None else -1.0


@lru_cache(maxsize=16)
def _float32s(n: int) -> struct.Struct:
    return struct.Struct(f"<{n}f")


def pack(vector: Vector) -> bytes:
    """Little-endian float32 (4 bytes a dimension, the same bytes on every replica)."""
    return _float32s(len(vector)).pack(*vector)


def unpack(data: bytes | memoryview) -> Vector:
    if len(data) % 4:
        raise ValueError("not a float32 vector")
    return _float32s(len(data) // 4).unpack(data)


class _Entry:
    __slots__ = ("cost", "expires", "payload", "vector")

    def __init__(self, vector: Vector, payload: bytes, expires: float) -> None:
        self.vector = vector
        self.payload = payload
        self.expires = expires
        self.cost = 32 * len(vector) + len(payload) + ENTRY_OVERHEAD


class MemoryVectorStore:
    """Partitions of entries; at most `max_entries` per partition, `max_total` and `max_bytes` in
    all, the least recently used going first (a hit counts as a use); entries live `ttl` seconds.
    Vectors are kept as tuples of floats: 32 bytes a dimension (12 KiB for 384), the price of a
    search at 5 us per 384-dim entry instead of 15-25 us for compact float32 arrays."""

    def __init__(self, max_entries: int, max_total: int, max_bytes: int = 1 << 62,
                 clock: Clock = time.monotonic) -> None:
        self.max_entries = max_entries
        self.max_total = max_total
        self.max_bytes = max_bytes
        self.clock = clock
        self.bytes = 0
        self._parts: dict[bytes, OrderedDict[bytes, _Entry]] = {}
        self._all: OrderedDict[tuple[bytes, bytes], _Entry] = OrderedDict()  # (partition, id): global LRU

    def __len__(self) -> int:
        return len(self._all)

    def partition_size(self, partition: bytes) -> int:
        return len(self._parts.get(partition, ()))

    def get_exact(self, partition: bytes, id_: bytes) -> bytes | None:
        part = self._parts.get(partition)
        entry = part.get(id_) if part is not None else None
        if entry is None:
            return None
        if entry.expires <= self.clock():
            self._drop(partition, id_)
            return None
        self._touch(partition, id_)
        return entry.payload

    async def search(self, partition: bytes, query: Vector, threshold: float) -> tuple[bytes, float] | None:
        """The payload of the most similar live entry and its similarity, when >= threshold. An
        exact scan, CHUNK entries at a time (other requests run in between)."""
        part = self._parts.get(partition)
        if not part:
            return None
        now = self.clock()
        for id_ in [id_ for id_, e in part.items() if e.expires <= now]:
            self._drop(partition, id_)
        entries = dict(part)
        top_id, top = await scan(query, [(i, e.vector) for i, e in entries.items()])
        if top_id is None or top < threshold:
            return None
        top_entry = entries[top_id]
        if part.get(top_id) is top_entry:
            self._touch(partition, top_id)
        return top_entry.payload, top

    def put(self, partition: bytes, id_: bytes, vector: Vector, payload: bytes, ttl: float) -> None:
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = OrderedDict()
        elif id_ in part:
            self._drop(partition, id_)
        entry = _Entry(vector, payload, self.clock() + ttl)
        part[id_] = entry
        self._all[(partition, id_)] = entry
        self.bytes += entry.cost
        while len(part) > self.max_entries:
            self._drop(partition, next(iter(part)))
        while len(self._all) > self.max_total or (self.bytes > self.max_bytes and self._all):
            p, i = next(iter(self._all))
            self._drop(p, i)

    def _touch(self, partition: bytes, id_: bytes) -> None:
        self._parts[partition].move_to_end(id_)
        self._all.move_to_end((partition, id_))

    def _drop(self, partition: bytes, id_: bytes) -> None:
        part = self._parts[partition]
        entry = part.pop(id_)
        del self._all[(partition, id_)]
        self.bytes -= entry.cost
        if not part:
            del self._parts[partition]




class VectorCache:
    """Vectors read from Redis, unpacked once: (partition, id) -> vector, an LRU bounded by bytes
    (as MemoryVectorStore counts them). An id is the hash of the embedded text in a partition of
    one embedding model: its vector never changes, so a cached one is never stale."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[tuple[bytes, bytes], Vector] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[bytes, bytes]) -> Vector | None:
        vector = self._entries.get(key)
        if vector is not None:
            self._entries.move_to_end(key)
        return vector

    def put(self, key: tuple[bytes, bytes], vector: Vector) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= 32 * len(old) + ENTRY_OVERHEAD
        self._entries[key] = vector
        self.bytes += 32 * len(vector) + ENTRY_OVERHEAD
        while self.bytes > self.max_bytes and self._entries:
            _, gone = self._entries.popitem(last=False)
            self.bytes -= 32 * len(gone) + ENTRY_OVERHEAD


async def scan(query: Vector, items: list[tuple[bytes, Vector]]) -> tuple[bytes | None, float]:
    """best() over `items`, CHUNK at a time, the event loop let run in between."""
    top_id: bytes | None = None
    top = -2.0
    for start in range(0, len(items), CHUNK):
        if start:
            await asyncio.sleep(0)
        found, sim = best(query, items[start:start + CHUNK])
        if found is not None and sim > top:
            top_id, top = found, sim
    return top_id, top


# KEYS: v, r, z. ARGV: id, packed vector, expiry + payload, expires (s), now (s), max_entries, ttl (ms)
_INSERT = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[5], 'LIMIT', 0, 1000)
if #expired > 0 then
  redis.call('HDEL', KEYS[1], unpack(expired))
  redis.call('HDEL', KEYS[2], unpack(expired))
  redis.call('ZREM', KEYS[3], unpack(expired))
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
local excess = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[6])
if excess > 0 then
  local old = redis.call('ZRANGE', KEYS[3], 0, excess - 1)
  redis.call('HDEL', KEYS[1], unpack(old))
  redis.call('HDEL', KEYS[2], unpack(old))
  redis.call('ZREM', KEYS[3], unpack(old))
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[7]) end
return excess
"""


class RedisVectorStore:
    """The same partitions in Redis, shared by replicas. Every call goes through the guard: Redis
    down, slow or answering garbage is None (a miss) or nothing stored. Times are wall-clock
    (time.time by default): replicas compare expiries written by each other.

    A search reads the partition's live ids (ZRANGEBYSCORE on `:z` from now on, at most
    max_entries), fetches only the vectors this process has not unpacked yet (HMGET on `:v`, kept
    in a VectorCache of `cache_bytes`), scans them in-process, and reads the best one's answer
    (HGET on `:r`) when it reaches the threshold."""

    def __init__(self, guard: RedisGuard, prefix: str, max_entries: int, read_timeout: float,
                 write_timeout: float, clock: Clock = time.time, cache_bytes: int = 64 << 20) -> None:
        self.guard = guard
        self.prefix = prefix + "semcache:"
        self.max_entries = max_entries
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.clock = clock
        self.vectors = VectorCache(cache_bytes)
        self._insert = guard.client.register_script(_INSERT)

    def keys(self, partition: bytes) -> tuple[str, str, str]:
        base = self.prefix + partition.hex()
        return base + ":v", base + ":r", base + ":z"

    async def get_exact(self, partition: bytes, id_: bytes) -> bytes | None:
        _, r, _ = self.keys(partition)
        c = self.guard.client
        data = await self.guard.call(self.read_timeout, lambda: c.hget(r, id_))
        if not isinstance(data, bytes) or len(data) < _EXPIRES.size:
            return None
        if _EXPIRES.unpack_from(data)[0] <= self.clock():
            return None
        return data[_EXPIRES.size:]

    async def search(self, partition: bytes, query: Vector, threshold: float) -> tuple[bytes, float] | None:
        v, r, z = self.keys(partition)
        c = self.guard.client
        now = self.clock()
        live: Any = await self.guard.call(self.read_timeout, lambda: c.zrangebyscore(z, f"({now!r}", "+inf"))
        if not live:
            return None
        items: list[tuple[bytes, Vector]] = []
        need: list[bytes] = []
        for id_ in live:
            vec = self.vectors.get((partition, id_))
            if vec is None:
                need.append(id_)
            else:
                items.append((id_, vec))
        for start in range(0, len(need), FETCH):  # a few hundred KB a call, each under read_timeout
            ids = need[start:start + FETCH]
            values = await self.guard.call(self.read_timeout, partial(c.hmget, v, ids))
            if values is None:
                return None
            for id_, data in zip(ids, values, strict=False):
                if isinstance(data, bytes) and data and not len(data) % 4:
                    vec = unpack(data)
                    self.vectors.put((partition, id_), vec)
                    items.append((id_, vec))
        top_id, top = await scan(query, items)
        if top_id is None or top < threshold:
            return None
        data = await self.guard.call(self.read_timeout, lambda: c.hget(r, top_id))
        if not isinstance(data, bytes) or len(data) < _EXPIRES.size:
            return None  # evicted in between
        return data[_EXPIRES.size:], top

    async def put(self, partition: bytes, id_: bytes, vector: Vector, payload: bytes, ttl: float) -> bool:
        now = self.clock()
        args: list[bytes | str | int] = [id_, pack(vector), _EXPIRES.pack(now + ttl) + payload, repr(now + ttl),
                                         repr(now), self.max_entries, max(1, int(ttl * 1000))]
        keys = list(self.keys(partition))
        done = await self.guard.call(self.write_timeout, lambda: self._insert(keys=keys, args=args))
        return done is not None
