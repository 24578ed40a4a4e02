"""The request log's store contract: one record per request (observability/request_log.py writes
them in batches), read back newest first with filters and a cursor, and kept bounded: records older
than the retention and those past the row budget are deleted, oldest first, in batches (SQL: a
whole segment of the ring at a time, state/request_log_sql.py).

Records are written as rows: tuples of plain values in COLUMNS order, attempts and plugin notes as
JSON text. The request path builds the row directly (observability/request_log.py), and a row of
atoms is something the garbage collector stops looking at after its first pass, where a record with
lists and dicts in it would be walked by every full pass while it waits in the writer's queue.

Times are ms since the epoch; `since <= at < until`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import msgspec

MAX_PAGE = 1000
CHAT_PATH = "/v1/chat/completions"  # the default of Detail.path
SEGMENTS = 8  # the SQL store's ring of tables (tables.py); the row budget is kept a segment at a time


class Detail(msgspec.Struct, omit_defaults=True, gc=False):
    """What a record holds beyond its filtered columns: one JSON object (column `detail`), without
    the fields left at their defaults. The defaults are the common case (a POST to chat
    completions), so that most records leave them out: every byte of a row is written on the
    gateway's CPU when the log is a SQLite file (~0.5 us a row for 100 bytes, measured)."""

    method: str = "POST"
    path: str = CHAT_PATH  # msgspec omits a default by identity: the writer passes this very object
    principal: str | None = None  # the key id, or master / anonymous
    user_id: str | None = None
    team_id: str | None = None
    service: str | None = None  # the service that answered
    upstream_model: str | None = None
    stream: bool = False
    attempts: Any = None  # [{service, model, ok, error, status, ms, fallback}], in order
    error: str | None = None
    error_code: str | None = None
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_estimated: bool = False
    cost_micros: int | None = None  # None: not metered
    cached: bool = False  # a cache answered (no upstream call, no charge)
    plugins: Any = None  # what plugins did: ["pii: masked 3 items", "cache: hit"]
    body_truncated: bool = False
    response_model: str | None = None  # the model the upstream's answer named, when it named one
    replay_of: str | None = None  # the request this one sent again (the control panel's Replay)


class RequestRecord(Detail, kw_only=True):
    """A record as read back: the filtered columns, the detail, the bodies."""

    id: str  # the request id (X-Request-ID): a client may reuse one, so it is not unique
    at: int  # when the request began, ms since the epoch
    status: int  # the HTTP status (499: the client went away)
    latency_ms: float
    key_id: str | None = None
    model: str | None = None  # what the client asked for
    # only with log_bodies: what went upstream (after the plugins' masking) and what came back,
    # each cut at request_log.max_body_bytes
    request_body: str | None = None
    response_body: str | None = None
    seq: int | None = None  # the store's own row number (set when read back)


Row = tuple[Any, ...]  # a record as written: COLUMNS order
COLUMNS = ("id", "at", "key_id", "model", "status", "latency_ms", "detail", "request_body", "response_body")
ROW_FIELDS = ("id", "at", "key_id", "model", "status", "latency_ms")  # the columns a filter reads


DETAIL_FIELDS = Detail.__struct_fields__
encode_detail = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


def to_row(r: RequestRecord) -> Row:
    detail = Detail(**{f: getattr(r, f) for f in DETAIL_FIELDS})
    return (r.id, r.at, r.key_id, r.model, r.status, r.latency_ms, encode_detail(detail).decode(),
            r.request_body, r.response_body)


def from_row(row: Row, seq: int | None = None) -> RequestRecord:
    """`row` in COLUMNS order; its detail as JSON text, or already decoded (SQLAlchemy's JSON type)."""
    id, at, key_id, model, status, latency_ms, detail, request_body, response_body = row
    fields = _decode(detail) if isinstance(detail, str | bytes) else dict(detail)
    return RequestRecord(id=id, at=at, key_id=key_id, model=model, status=status, latency_ms=latency_ms,
                         request_body=request_body, response_body=response_body, seq=seq, **fields)


class RequestQuery(msgspec.Struct, kw_only=True):
    """Filters (all must match) and the page: records strictly older than `cursor` (at, seq)."""

    since: int | None = None
    until: int | None = None
    key_id: str | None = None
    model: str | None = None
    status: int | None = None  # exactly this status
    status_class: int | None = None  # 2, 4, 5: 2xx, 4xx, 5xx
    errors: bool = False  # status >= 400 (or none at all)
    min_latency_ms: float | None = None
    cursor: tuple[int, int] | None = None
    limit: int = 100


class RequestPage(msgspec.Struct, kw_only=True):
    records: list[RequestRecord]
    next_cursor: tuple[int, int] | None  # None: this was the last page


class RangeQuery(msgspec.Struct, kw_only=True, frozen=True):
    """Traffic over a time range in `steps` buckets of `step_ms` from `since`: the control panel's
    longer ranges (observability/history.py). `model`: the model asked; `service`: the one that
    answered. A record's latency and time to first token are counted in the bucket of the first
    bound (ms) they do not exceed, or after the last one."""

    since: int
    step_ms: int
    steps: int
    latency_bounds_ms: tuple[float, ...]
    ttft_bounds_ms: tuple[float, ...]
    model: str | None = None
    service: str | None = None

    @property
    def until(self) -> int:
        return self.since + self.step_ms * self.steps


class RangeCounts(msgspec.Struct, kw_only=True):
    # (step, latency bucket, requests, errors: 5xx or no status, output tokens)
    latency: list[tuple[int, int, int, int, int]]
    ttft: list[tuple[int, int, int]]  # (step, time-to-first-token bucket, requests)


def bucket_of(bounds: tuple[float, ...], value: float) -> int:
    for i, b in enumerate(bounds):
        if value <= b:
            return i
    return len(bounds)


def count_range(records: Iterable[RequestRecord], q: RangeQuery) -> RangeCounts:
    """RangeCounts of records in Python (the in-process store; the SQL stores count in SQL)."""
    lat: dict[tuple[int, int], list[int]] = {}
    ttft: dict[tuple[int, int], int] = {}
    until = q.until
    for r in records:
        if not q.since <= r.at < until or (q.model is not None and r.model != q.model):
            continue
        if q.service is not None and r.service != q.service:
            continue
        step = (r.at - q.since) // q.step_ms
        c = lat.setdefault((step, bucket_of(q.latency_bounds_ms, r.latency_ms)), [0, 0, 0])
        c[0] += 1
        c[1] += 1 if r.status <= 0 or r.status >= 500 else 0
        c[2] += r.completion_tokens or 0
        if r.ttft_ms is not None:
            k = (step, bucket_of(q.ttft_bounds_ms, r.ttft_ms))
            ttft[k] = ttft.get(k, 0) + 1
    return RangeCounts(latency=sorted((s, b, *c) for (s, b), c in lat.items()),  # type: ignore[misc]
                       ttft=sorted((s, b, n) for (s, b), n in ttft.items()))


class RequestLogStore(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, rows: list[Row]) -> int:
        """All in one transaction; the store keeps its row budget as it writes (the oldest records
        go). Returns how many records that removed."""
        ...

    async def query(self, q: RequestQuery) -> RequestPage:
        """Newest first (by `at`, then by insertion), without bodies."""
        ...

    async def get(self, id: str) -> RequestRecord | None:
        """The newest record with this request id, bodies included."""
        ...

    async def count_range(self, q: RangeQuery) -> RangeCounts:
        """Requests, errors, output tokens and the latency and time-to-first-token histograms per
        step of `q`, counted by the store (RangeQuery)."""
        ...

    async def prune(self, older_than: int) -> int:
        """Retention: deletes records with `at < older_than` (SQL: a segment at a time, once all of
        it has expired). Returns how many went."""
        ...


def matches(r: RequestRecord, q: RequestQuery) -> bool:
    """`q`'s filters (not its cursor) on one record: the in-process store, the live stream."""
    if q.since is not None and r.at < q.since:
        return False
    if q.until is not None and r.at >= q.until:
        return False
    if q.key_id is not None and r.key_id != q.key_id:
        return False
    if q.model is not None and r.model != q.model:
        return False
    if q.status is not None and r.status != q.status:
        return False
    if q.status_class is not None and r.status // 100 != q.status_class:
        return False
    if q.errors and 0 < r.status < 400:
        return False
    return q.min_latency_ms is None or r.latency_ms >= q.min_latency_ms
