"""The request log in the process (`database_url: memory://`): gone at restart, never more than
`max_rows` records (the oldest go first, as on SQL). Records are kept as their rows (tuples of
plain values, which the garbage collector stops tracking) and decoded when read: a full log of
decoded records would be walked by every full collection and slow every request."""

from __future__ import annotations

import itertools
from collections import deque

import msgspec

from clawdbot.state.request_log_base import (
    MAX_PAGE,
    RangeCounts,
    RangeQuery,
    RequestPage,
    RequestQuery,
    RequestRecord,
    Row,
    count_range,
    from_row,
    matches,
)


class MemoryRequestLogStore:
    def __init__(self, max_rows: int) -> None:
        self._rows: deque[tuple[int, Row]] = deque(maxlen=max(max_rows, 1))  # (seq, row), insertion order
        self._seq = itertools.count(1)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._rows.clear()

    async def write(self, rows: list[Row]) -> int:
        seq, kept = self._seq, self._rows
        before = len(kept)
        kept.extend((next(seq), row) for row in rows)
        return before + len(rows) - len(kept)  # the oldest, pushed out by the row budget

    async def query(self, q: RequestQuery) -> RequestPage:
        limit = min(max(q.limit, 1), MAX_PAGE)
        records = (from_row(row, seq) for seq, row in self._rows)
        found = sorted((r for r in records if matches(r, q) and _before(r, q.cursor)),
                       key=lambda r: (r.at, r.seq or 0), reverse=True)[:limit + 1]
        page = [msgspec.structs.replace(r, request_body=None, response_body=None) for r in found[:limit]]
        last = page[-1] if len(found) > limit else None
        return RequestPage(records=page, next_cursor=(last.at, last.seq or 0) if last is not None else None)

    async def get(self, id: str) -> RequestRecord | None:
        found = [from_row(row, seq) for seq, row in self._rows if row[0] == id]
        return max(found, key=lambda r: (r.at, r.seq or 0)) if found else None

    async def count_range(self, q: RangeQuery) -> RangeCounts:
        return count_range((from_row(row, seq) for seq, row in self._rows if q.since <= row[1] < q.until), q)

    async def prune(self, older_than: int) -> int:
        """From the oldest end only (records arrive about in time order): a pass costs what it
        deletes, not the whole log."""
        rows, gone = self._rows, 0
        while rows and rows[0][1][1] < older_than:  # row[1]: `at`
            rows.popleft()
            gone += 1
        return gone


def _before(r: RequestRecord, cursor: tuple[int, int] | None) -> bool:
    return cursor is None or (r.at, r.seq or 0) < cursor
