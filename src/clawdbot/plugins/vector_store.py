"""Where `semantic_cache` keeps its vectors (docs/plugin-cache.md): a partition per (scope, model,
embedding model, conversation context); a search is an exact scan of one partition.

Vectors are normalised once, when stored (and the query once per search), so cosine similarity is a
dot product; they are float32 (array('f'): 4 bytes a dimension). A search is O(entries x
dimensions) in pure Python (about 8 us per 384-dim vector on one core: bench/cache_bench.py), so
`max_entries` per partition is what bounds its cost.

    MemoryVectorStore   partitions of LRU entries, bounded per partition and in total
    RedisVectorStore    per partition three keys: `<p>semcache:<part>:v` (hash id -> expiry +
                        packed float32 vector), `:r` (hash id -> expiry + encoded answer) and `:z`
                        (sorted set id -> expiry: the oldest go first). One Lua script inserts,
                        drops the expired and evicts the oldest beyond max_entries, atomically, so
                        replicas never grow a partition past it. A search reads the partition's
                        vectors (HGETALL, at most max_entries) and computes in-process: no
                        RediSearch is assumed.

Entry ids are a hash of the embedded text: the same text twice is one entry, and a lookup of a
text already stored needs no embedding (`get_exact`)."""

from __future__ import annotations

import math
import struct
import sys
import time
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from operator import mul

from clawdbot.plugins.cache_store import Clock, RedisGuard

_EXPIRES = struct.Struct("<d")


def normalise(vector: Sequence[float]) -> array[float] | None:
    """The unit vector as float32, or None for a zero, empty or non-finite vector."""
    if not vector:
        return None
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if not norm or not math.isfinite(norm):
        return None
    return array("f", [x / norm for x in vector])


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    s: float = sum(map(mul, a, b))
    return s


def best(query: Sequence[float], candidates: Iterable[tuple[bytes, Sequence[float]]]) -> tuple[bytes | None, float]:
    """The candidate most similar to `query` (both unit vectors) and the similarity; vectors of
    another dimension are skipped."""
    top_id, top = None, -2.0
    n = len(query)
    for id_, vec in candidates:
        if len(vec) != n:
            continue
        s = sum(map(mul, query, vec))
        if s > top:
            top_id, top = id_, s
    return top_id, top


def pack(vector: array[float]) -> bytes:
    """Little-endian float32 (the same bytes on every replica)."""
    if sys.byteorder == "little":
        return vector.tobytes()
    v = array("f", vector)
    v.byteswap()
    return v.tobytes()


def unpack(data: bytes | memoryview) -> array[float]:
    v = array("f")
    v.frombytes(data)
    if sys.byteorder != "little":
        v.byteswap()
    return v


class _Entry:
    __slots__ = ("expires", "partition", "payload", "vector")

    def __init__(self, partition: bytes, vector: array[float], payload: bytes, expires: float) -> None:
        self.partition = partition
        self.vector = vector
        self.payload = payload
        self.expires = expires


class MemoryVectorStore:
    """Partitions of entries; at most `max_entries` per partition and `max_total` in all, the least
    recently used going first (a hit counts as a use); entries live `ttl` seconds."""

    def __init__(self, max_entries: int, max_total: int, clock: Clock = time.monotonic) -> None:
        self.max_entries = max_entries
        self.max_total = max_total
        self.clock = clock
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

    def search(self, partition: bytes, query: Sequence[float], threshold: float) -> tuple[bytes, float] | None:
        """The payload of the most similar live entry and its similarity, when >= threshold."""
        part = self._parts.get(partition)
        if not part:
            return None
        now = self.clock()
        expired = [id_ for id_, e in part.items() if e.expires <= now]
        for id_ in expired:
            self._drop(partition, id_)
        top_id, top = best(query, ((id_, e.vector) for id_, e in part.items()))
        if top_id is None or top < threshold:
            return None
        self._touch(partition, top_id)
        return part[top_id].payload, top

    def put(self, partition: bytes, id_: bytes, vector: array[float], payload: bytes, ttl: float) -> None:
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = OrderedDict()
        elif id_ in part:
            self._drop(partition, id_)
        entry = _Entry(partition, vector, payload, self.clock() + ttl)
        part[id_] = entry
        self._all[(partition, id_)] = entry
        while len(part) > self.max_entries:
            self._drop(partition, next(iter(part)))
        while len(self._all) > self.max_total:
            p, i = next(iter(self._all))
            self._drop(p, i)

    def _touch(self, partition: bytes, id_: bytes) -> None:
        self._parts[partition].move_to_end(id_)
        self._all.move_to_end((partition, id_))

    def _drop(self, partition: bytes, id_: bytes) -> None:
        part = self._parts[partition]
        del part[id_]
        del self._all[(partition, id_)]
        if not part:
            del self._parts[partition]


# KEYS: v, r, z. ARGV: id, packed vector, payload, expires (s), now (s), max_entries, ttl (ms)
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
    (time.time by default): replicas compare expiries written by each other."""

    def __init__(self, guard: RedisGuard, prefix: str, max_entries: int, read_timeout: float,
                 write_timeout: float, clock: Clock = time.time) -> None:
        self.guard = guard
        self.prefix = prefix + "semcache:"
        self.max_entries = max_entries
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.clock = clock
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

    async def search(self, partition: bytes, query: Sequence[float], threshold: float) -> tuple[bytes, float] | None:
        v, r, _ = self.keys(partition)
        c = self.guard.client
        raw = await self.guard.call(self.read_timeout, lambda: c.hgetall(v))
        if not isinstance(raw, dict) or not raw:
            return None
        now, size = self.clock(), _EXPIRES.size
        live = ((id_, unpack(memoryview(data)[size:])) for id_, data in raw.items()
                if isinstance(id_, bytes) and isinstance(data, bytes) and len(data) > size
                and _EXPIRES.unpack_from(data)[0] > now)
        top_id, top = best(query, live)
        if top_id is None or top < threshold:
            return None
        data = await self.guard.call(self.read_timeout, lambda: c.hget(r, top_id))
        if not isinstance(data, bytes) or len(data) < size:
            return None  # evicted in between
        return data[size:], top

    async def put(self, partition: bytes, id_: bytes, vector: array[float], payload: bytes, ttl: float) -> bool:
        now = self.clock()
        expires = _EXPIRES.pack(now + ttl)
        args: list[bytes | str | int] = [id_, expires + pack(vector), expires + payload, repr(now + ttl),
                                         repr(now), self.max_entries, max(1, int(ttl * 1000))]
        keys = list(self.keys(partition))
        done = await self.guard.call(self.write_timeout, lambda: self._insert(keys=keys, args=args))
        return done is not None
