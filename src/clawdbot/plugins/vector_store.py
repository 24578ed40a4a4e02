"""Where `semantic_cache` keeps its vectors (docs/plugin-cache.md): a partition per (scope, model,
embedding model, conversation context); a search is an exact scan of one partition, with numpy
(the `semantic` extra: this module is imported only when a semantic_cache plugin is built).

Vectors are normalised once (unit(): when embedded, the query once per search), so cosine
similarity is a dot product. A partition's vectors are the rows of one contiguous float32 matrix
(_Rows: 4 bytes a dimension, 1.5 KiB for 384), and a search is one matrix-vector product and an
argmax: about 60 us over 1,000 x 384 (bench/cache_bench.py), 1.3 ms over 10,000 x 384, memory
bandwidth bound (0.25-0.35 ns a float here). A partition larger than SLICE floats is scanned SLICE
floats at a time, the event loop let run in between (no hold much longer than 1 ms).

    MemoryVectorStore   partitions of LRU entries, bounded per partition, in total and in bytes
    RedisVectorStore    per partition three keys: `<p>semcache:<part>:v` (hash id -> packed
                        little-endian float32 vector), `:r` (hash id -> expiry + encoded answer) and
                        `:z` (sorted set id -> expiry: the oldest go first). One Lua script inserts,
                        drops the expired and evicts the oldest beyond max_entries, atomically, so
                        replicas never grow a partition past it. A search reads the live ids
                        (ZRANGEBYSCORE, at most max_entries), fetches the vectors this process has
                        not unpacked yet (HMGET; a VectorCache keeps them, a matrix per partition)
                        and scans in-process: no RediSearch is assumed.

Entry ids are a hash of the embedded text: the same text twice is one entry, and a lookup of a
text already stored needs no embedding (`get_exact`)."""

from __future__ import annotations

import asyncio
import math
import struct
import time
from collections import OrderedDict
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from clawdbot.plugins.cache_store import Clock, RedisGuard

Vector = npt.NDArray[np.float32]  # 1-D; a unit vector wherever a store takes one (unit())
_F32 = np.dtype("<f4")  # the wire format: little-endian float32, the same bytes on every replica
_EXPIRES = struct.Struct("<d")
# A search multiplies at most this many floats (16 MiB of float32, 1-1.5 ms here) before it lets
# the event loop run: 10,000 x 384 is one product, 10,000 x 1536 four (measured: bench/cache_bench.py
# --dims 1536; in one product it held the loop 3.5 ms, and a partition may have 100,000 entries).
SLICE = 1 << 22
FETCH = 256  # vectors a Redis search fetches per call (HMGET)
# What the bytes bound counts beyond 4 bytes a dimension (and an entry's payload), measured with
# tracemalloc (bench/cache_bench.py prints traced against counted) and rounded up: a memory entry
# (its _Entry, two OrderedDict nodes, the tuple key, the id, its list slot and expiry: 289 bytes),
# a partition (the _Partition, its list, two arrays and dict, its key: 737) and a row of the
# VectorCache (the id, its dict entry and list slot: 72). Spare rows (up to a quarter of a matrix,
# _Rows: none in a full partition) are not counted.
ENTRY_OVERHEAD = 320
PARTITION_OVERHEAD = 800
ROW_OVERHEAD = 80


def unit(vector: Sequence[float] | npt.ArrayLike) -> Vector | None:
    """The unit vector as float32, or None for a zero, empty, non-finite or not flat vector."""
    try:
        a = np.asarray(vector, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    if a.ndim != 1 or not a.size:
        return None
    scale = float(np.abs(a).max())  # scaled first: the squares of 1e200 do not overflow
    if not scale or not math.isfinite(scale):
        return None
    a = a / scale
    out: Vector = (a / math.sqrt(float(a @ a))).astype(np.float32)
    return out


def pack(vector: Vector) -> bytes:
    """Little-endian float32 (4 bytes a dimension, the same bytes on every replica)."""
    return np.asarray(vector, dtype=_F32).tobytes()


def unpack(data: bytes | memoryview) -> Vector:
    """A read-only view of packed float32 (no copy)."""
    if len(data) % 4:
        raise ValueError("not a float32 vector")
    return np.frombuffer(data, dtype=_F32)


class _Rows:
    """Unit vectors of one dimension: row i of `matrix` is the vector of ids[i], rows [0, len)
    in use. A row is appended at the end; a removed row takes the last one in its place (one row
    copied, no compaction pass). The matrix grows by a quarter when full, from one row (a
    partition of one entry holds one row) up to `limit` rows (max_entries: a full partition has
    no spare row), and shrinks back to a quarter above its rows when more than half is unused."""

    __slots__ = ("dims", "ids", "limit", "matrix")

    def __init__(self, dims: int, limit: int) -> None:
        self.dims = dims
        self.limit = limit
        self.ids: list[bytes] = []
        self.matrix: npt.NDArray[np.float32] = np.empty((0, dims), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def _resize(self, capacity: int) -> None:
        n = len(self.ids)
        matrix = np.empty((capacity, self.dims), dtype=np.float32)
        matrix[:n] = self.matrix[:n]
        self.matrix = matrix

    def _append(self, id_: bytes, vector: npt.ArrayLike) -> int:
        n = len(self.ids)
        if n == len(self.matrix):
            self._resize(max(n + 1, min(n + n // 4, self.limit)))
        self.matrix[n] = vector
        self.ids.append(id_)
        return n

    def _remove(self, row: int) -> bytes | None:
        """Drops a row; the last one moves into its place: its id, or None if `row` was the last."""
        last = len(self.ids) - 1
        moved = None
        if row != last:
            self.matrix[row] = self.matrix[last]
            moved = self.ids[row] = self.ids[last]
        self.ids.pop()
        if len(self.matrix) - last > max(4, last // 2):
            self._resize(last + last // 4)
        return moved


async def scan(rows: _Rows, query: Vector) -> tuple[bytes | None, float]:
    """The id of the row most similar to `query` (of rows.dims dimensions) and the similarity:
    argmax(matrix @ query), SLICE floats at a time with the event loop let run in between. Rows
    appended, removed or moved by others in between are compared or not (at worst a miss: an id
    is read with its score, so a found one is never another's)."""
    step = max(1, SLICE // rows.dims)
    top_id: bytes | None = None
    top = -math.inf
    start, n = 0, len(rows)
    while start < n:
        stop = min(start + step, n)
        scores = rows.matrix[start:stop] @ query
        i = int(scores.argmax())
        score = float(scores[i])
        if score > top:
            top_id, top = rows.ids[start + i], score
        start = stop
        if start < len(rows):
            await asyncio.sleep(0)
        n = len(rows)
    return top_id, top


class _Entry:
    __slots__ = ("cost", "expires", "payload", "row")

    def __init__(self, payload: bytes, expires: float, cost: int) -> None:
        self.payload = payload
        self.expires = expires
        self.cost = cost
        self.row = 0


class _Partition(_Rows):
    """A memory partition: the rows, each row's expiry (a float64 column: expired entries are
    found without a Python loop) and the entries in LRU order."""

    __slots__ = ("entries", "expires", "next_expiry")

    def __init__(self, dims: int, limit: int) -> None:
        super().__init__(dims, limit)
        self.expires: npt.NDArray[np.float64] = np.empty(0, dtype=np.float64)
        self.entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self.next_expiry = math.inf  # at most the earliest expiry: no expiry check before it

    def _resize(self, capacity: int) -> None:
        n = len(self.ids)
        expires = np.empty(capacity, dtype=np.float64)
        expires[:n] = self.expires[:n]
        self.expires = expires
        super()._resize(capacity)

    def add(self, id_: bytes, vector: npt.ArrayLike, entry: _Entry) -> None:
        entry.row = self._append(id_, vector)
        self.expires[entry.row] = entry.expires
        self.entries[id_] = entry
        self.next_expiry = min(self.next_expiry, entry.expires)

    def remove(self, id_: bytes) -> _Entry:
        entry = self.entries.pop(id_)
        last = len(self.ids) - 1
        self.expires[entry.row] = self.expires[last]
        moved = self._remove(entry.row)
        if moved is not None:
            self.entries[moved].row = entry.row
        return entry

    def expired(self, now: float) -> list[bytes]:
        """The ids expired at `now` (for the store to drop); next_expiry: the earliest of the rest."""
        n = len(self.ids)
        gone = [self.ids[i] for i in np.flatnonzero(self.expires[:n] <= now).tolist()]
        self.next_expiry = float(self.expires[:n][self.expires[:n] > now].min(initial=math.inf))
        return gone


class MemoryVectorStore:
    """Partitions of entries; at most `max_entries` per partition, `max_total` and `max_bytes` in
    all, the least recently used going first (a hit counts as a use); entries live `ttl` seconds.
    An entry counts 4 bytes a dimension, its payload and ENTRY_OVERHEAD, a partition
    PARTITION_OVERHEAD: 1.9 KiB for a 384-dim vector and a 100-byte answer."""

    def __init__(self, max_entries: int, max_total: int, max_bytes: int = 1 << 62,
                 clock: Clock = time.monotonic) -> None:
        self.max_entries = max_entries
        self.max_total = max_total
        self.max_bytes = max_bytes
        self.clock = clock
        self.bytes = 0
        self._parts: dict[bytes, _Partition] = {}
        self._all: OrderedDict[tuple[bytes, bytes], _Entry] = OrderedDict()  # (partition, id): global LRU

    def __len__(self) -> int:
        return len(self._all)

    def partition_size(self, partition: bytes) -> int:
        part = self._parts.get(partition)
        return len(part) if part is not None else 0

    def get_exact(self, partition: bytes, id_: bytes) -> bytes | None:
        part = self._parts.get(partition)
        entry = part.entries.get(id_) if part is not None else None
        if entry is None:
            return None
        if entry.expires <= self.clock():
            self._drop(partition, id_)
            return None
        self._touch(partition, id_)
        return entry.payload

    async def search(self, partition: bytes, query: Vector, threshold: float) -> tuple[bytes, float] | None:
        """The payload of the most similar live entry and its similarity, when >= threshold. An
        exact scan (scan()); a query of another dimension than the partition's finds nothing."""
        part = self._parts.get(partition)
        q = np.asarray(query, dtype=np.float32)
        if part is None or q.shape != (part.dims,):
            return None
        now = self.clock()
        if part.next_expiry <= now:
            for id_ in part.expired(now):
                self._drop(partition, id_)
            if not part.entries:
                return None
        top_id, top = await scan(part, q)
        if top_id is None or top < threshold:
            return None
        entry = part.entries.get(top_id)  # None: dropped while a long scan let others run
        if entry is None:
            return None
        self._touch(partition, top_id)
        return entry.payload, top

    def put(self, partition: bytes, id_: bytes, vector: Vector, payload: bytes, ttl: float) -> None:
        """`vector`: a unit vector (unit()). One of another dimension than the partition's
        replaces it whole: the embedding model changed, the old vectors compare with nothing."""
        part = self._parts.get(partition)
        if part is not None:
            if part.dims != len(vector):
                for old in list(part.entries):
                    self._drop(partition, old)
            elif id_ in part.entries:
                self._drop(partition, id_)
            else:  # room first: the matrix never needs more than max_entries rows
                while len(part.entries) >= self.max_entries:
                    self._drop(partition, next(iter(part.entries)))
            part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = _Partition(len(vector), self.max_entries)
            self.bytes += PARTITION_OVERHEAD
        entry = _Entry(payload, self.clock() + ttl, 4 * len(vector) + len(payload) + ENTRY_OVERHEAD)
        part.add(id_, vector, entry)
        self._all[(partition, id_)] = entry
        self.bytes += entry.cost
        while len(self._all) > self.max_total or (self.bytes > self.max_bytes and self._all):
            p, i = next(iter(self._all))
            self._drop(p, i)

    def _touch(self, partition: bytes, id_: bytes) -> None:
        self._parts[partition].entries.move_to_end(id_)
        self._all.move_to_end((partition, id_))

    def _drop(self, partition: bytes, id_: bytes) -> None:
        part = self._parts[partition]
        entry = part.remove(id_)
        del self._all[(partition, id_)]
        self.bytes -= entry.cost
        if not part.entries:
            del self._parts[partition]
            self.bytes -= PARTITION_OVERHEAD


class _Block(_Rows):
    """A partition's vectors as read from Redis: the rows and id -> row."""

    __slots__ = ("counted", "index")

    def __init__(self, dims: int, limit: int) -> None:
        super().__init__(dims, limit)
        self.index: dict[bytes, int] = {}
        self.counted = 0  # bytes the VectorCache counts for it

    def add(self, id_: bytes, vector: npt.ArrayLike) -> None:
        if id_ not in self.index:
            self.index[id_] = self._append(id_, vector)

    def keep(self, live: set[bytes]) -> None:
        """Drops the rows whose id is not in `live` (expired or evicted in Redis)."""
        for id_ in [i for i in self.ids if i not in live]:
            row = self.index.pop(id_)
            moved = self._remove(row)
            if moved is not None:
                self.index[moved] = row

    def cost(self) -> int:
        return len(self.ids) * (4 * self.dims + ROW_OVERHEAD) + PARTITION_OVERHEAD


class VectorCache:
    """Vectors read from Redis, unpacked once: partition -> _Block, an LRU of partitions bounded
    by bytes (4 a dimension and ROW_OVERHEAD a vector, PARTITION_OVERHEAD a partition). An id is
    the hash of the embedded text in a partition of one embedding model: its vector never changes,
    so a cached one is never stale. A partition larger than max_bytes alone is not kept: each
    search fetches it again."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._blocks: OrderedDict[bytes, _Block] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(b) for b in self._blocks.values())

    def block(self, partition: bytes, dims: int, limit: int) -> _Block:
        """The partition's vectors (a use), new if none or of another dimension than `dims`;
        `limit`: the rows its matrix grows to without spare ones (max_entries)."""
        block = self._blocks.get(partition)
        if block is not None and block.dims == dims:
            self._blocks.move_to_end(partition)
            return block
        self.drop(partition)
        block = self._blocks[partition] = _Block(dims, limit)
        return block

    def drop(self, partition: bytes) -> None:
        block = self._blocks.pop(partition, None)
        if block is not None:
            self.bytes -= block.counted

    def settle(self, partition: bytes, block: _Block) -> None:
        """Counts `block`'s rows after a change (unless it left the cache meanwhile), then evicts
        the least recently used partitions beyond max_bytes."""
        if self._blocks.get(partition) is block:
            cost = block.cost()
            self.bytes += cost - block.counted
            block.counted = cost
        while self.bytes > self.max_bytes and self._blocks:
            _, gone = self._blocks.popitem(last=False)
            self.bytes -= gone.counted


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
    in a VectorCache of `cache_bytes`: a float32 matrix per partition, whose rows no longer live
    are dropped), scans them in-process, and reads the best one's answer (HGET on `:r`) when it
    reaches the threshold. Vectors of another dimension than the query's are skipped."""

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
        q = np.asarray(query, dtype=np.float32)
        dims = len(q)
        now = self.clock()
        live: Any = await self.guard.call(self.read_timeout, lambda: c.zrangebyscore(z, f"({now!r}", "+inf"))
        if not live:
            if live is not None:
                self.vectors.drop(partition)  # nothing live: what this process kept is dead
            return None
        block = self.vectors.block(partition, dims, self.max_entries)
        need = [id_ for id_ in live if id_ not in block.index]
        size = 4 * dims
        for start in range(0, len(need), FETCH):  # a few hundred KB a call, each under read_timeout
            ids = need[start:start + FETCH]
            values = await self.guard.call(self.read_timeout, partial(c.hmget, v, ids))
            if values is None:
                self.vectors.settle(partition, block)  # what was unpacked is kept, and counted
                return None
            for id_, data in zip(ids, values, strict=False):
                if isinstance(data, bytes) and len(data) == size:
                    vec = unpack(data)
                    if np.isfinite(vec).all():  # garbage must not become a NaN score (argmax's pick)
                        block.add(id_, vec)
        # From here on nothing awaits until the scan: `live` and the block are compared as they are
        # (after a fetch, another search may have changed the block meanwhile: counted again).
        found = sum(1 for id_ in live if id_ in block.index) if need else len(live)
        if found < len(block):  # rows no longer live in Redis (evicted, expired): dropped
            block.keep(set(live))
        self.vectors.settle(partition, block)
        top_id, top = await scan(block, q)
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
