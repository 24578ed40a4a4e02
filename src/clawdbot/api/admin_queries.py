"""The query parameters of the admin API's GET endpoints, one struct per endpoint: decoding into it
(api/http.py decode_query) is the check, and api/openapi_params.py writes the same struct into
/openapi.json, so what is documented is what is accepted. Unknown parameters are refused (a
misspelt filter would otherwise answer as if there were none). What a struct cannot say (a date
or a number of ms, a status class) is a string whose schema says it, parsed here."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

from clawdbot.api.admin_bodies import exact
from clawdbot.core.errors import BadRequest
from clawdbot.state.keys_base import AuditFilter
from clawdbot.state.request_log_base import MAX_PAGE, RequestQuery
from clawdbot.state.spend_base import MAX_REPORT_ROWS, GroupBy

MAX_QUERY_INT = 2**63 - 1  # a database integer
MAX_MS_DIGITS = 15  # ms since the epoch: up to the year 33658, enough for any date worth asking about
MS_PATTERN = exact(f"[0-9]{{1,{MAX_MS_DIGITS}}}")

Offset = Annotated[int, Meta(ge=0, le=MAX_QUERY_INT)]
PageSize = Annotated[int, Meta(ge=1, le=MAX_PAGE, description=f"rows, 1 to {MAX_PAGE}")]
Filter = Annotated[str, Meta(min_length=1, max_length=256)]
# ms since the epoch, or a UTC date (YYYY-MM-DD)
SpendBound = Annotated[str, Meta(
    description="ms since the epoch, or a date (YYYY-MM-DD, UTC)",
    extra_json_schema={"anyOf": [{"pattern": MS_PATTERN}, {"format": "date"}]})]
# ms since the epoch, or an RFC 3339 date or date-time (UTC unless it names an offset)
LogBound = Annotated[str, Meta(
    description="ms since the epoch, or an RFC 3339 date (UTC) or date-time",
    extra_json_schema={"anyOf": [{"pattern": MS_PATTERN}, {"format": "date"}, {"format": "date-time"}]})]
Status = Annotated[str, Meta(pattern=exact("[1-5]([0-9]{2}|[xX]{2})"),
                             description="a status (404) or a class (4xx)")]
Latency = Annotated[float, Meta(ge=0, le=1e12)]
Cursor = Annotated[str, Meta(pattern=exact("[0-9]{1,18}[.][0-9]{1,18}"),
                             description="`next_cursor` of the page before")]
Seconds = Annotated[float, Meta(gt=0, le=86400)]


class Query(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


RecordCursor = Annotated[str, Meta(pattern=exact("[0-9]{1,18}[.][A-Za-z0-9_-]{1,128}"),
                                   description="`next_cursor` of the page before (an `offset` then skips from there)")]
Search = Annotated[str, Meta(min_length=1, max_length=200, pattern=exact(r"[^\x00-\x1f\x7f]+"),  # no NUL: PostgreSQL
                             description="only records whose name or id (a key's hint too) holds this, "
                                         "case-insensitive; no control characters")]


class PageQuery(Query):
    """GET /admin/api/keys, /users, /teams: newest first, at most 500 (the store's page)."""

    limit: PageSize = 100
    offset: Offset = 0
    cursor: RecordCursor | UnsetType = UNSET
    q: Search | UnsetType = UNSET

    def after(self) -> tuple[int, str] | None:
        if isinstance(self.cursor, UnsetType):
            return None
        created, _, id = self.cursor.partition(".")
        return int(created), id

    def match(self) -> str | None:
        return None if isinstance(self.q, UnsetType) else self.q


def encode_record_cursor(cursor: tuple[int, str] | None) -> str | None:
    return None if cursor is None else f"{cursor[0]}.{cursor[1]}"


class AuditQuery(Query):
    limit: PageSize = 100
    before: Annotated[int, Meta(ge=0, le=MAX_QUERY_INT, description="ms: entries older than this")] | UnsetType = UNSET
    since: Annotated[int, Meta(ge=0, le=MAX_QUERY_INT, description="ms: entries at or after this")] | UnsetType = UNSET
    actor: Annotated[Filter, Meta(description="`master` or a key's id")] | UnsetType = UNSET
    action: Annotated[str, Meta(pattern=exact("[a-z_]{1,32}[.]([a-z_]{1,32}|[*])"),
                                description="an action (key.revoke), or all of a kind (key.*)")] | UnsetType = UNSET
    target_type: Annotated[str, Meta(pattern=exact("[a-z_]{1,32}"), description="key, user, team, config")] \
        | UnsetType = UNSET
    target_id: Filter | UnsetType = UNSET

    def where(self) -> AuditFilter:
        def value(v: T | UnsetType) -> T | None:
            return None if isinstance(v, UnsetType) else v

        return AuditFilter(actor=value(self.actor), action=value(self.action), target_type=value(self.target_type),
                           target_id=value(self.target_id), since=value(self.since))


class SpendQuery(Query):
    group_by: GroupBy = "key"
    since: SpendBound | UnsetType = UNSET
    until: Annotated[SpendBound, Meta(description="ms (exclusive) or a date (inclusive: the whole day); after "
                                                  "`since`")] | UnsetType = UNSET
    key_id: Filter | UnsetType = UNSET
    user_id: Filter | UnsetType = UNSET
    team_id: Filter | UnsetType = UNSET
    model: Filter | UnsetType = UNSET
    limit: Annotated[int, Meta(ge=1, le=MAX_REPORT_ROWS)] = 100


class OverviewQuery(Query):
    """GET /panel/api/overview (web/panel.py): the range (1h: the process's own timeline; longer:
    counted from the request log) and the scope: a configured model (as asked), a service (as
    answered), or both (that model's traffic the service answered)."""

    range: Literal["1h", "6h", "24h", "7d"] = "1h"
    model: Annotated[Filter, Meta(description="a model of the config")] | UnsetType = UNSET
    service: Annotated[Filter, Meta(description="a service of the config")] | UnsetType = UNSET


class StreamQuery(Query):
    """GET /admin/api/requests/stream: the filters of the list without a window or a page."""

    key_id: Filter | UnsetType = UNSET
    model: Filter | UnsetType = UNSET
    status: Status | UnsetType = UNSET
    errors: Annotated[bool, Meta(description="true: status 400 and up, or none")] = False
    min_latency_ms: Latency | UnsetType = UNSET
    # a bounded stream (a script's "what comes in the next minute"); default: until the client goes
    timeout_s: Annotated[Seconds, Meta(description="end the stream after this many seconds")] | UnsetType = UNSET


class RequestsQuery(Query):
    """GET /admin/api/requests: newest first, since <= at < until."""

    since: LogBound | UnsetType = UNSET
    until: Annotated[LogBound, Meta(description="as `since`, and after it")] | UnsetType = UNSET
    key_id: Filter | UnsetType = UNSET
    model: Filter | UnsetType = UNSET
    status: Status | UnsetType = UNSET
    errors: Annotated[bool, Meta(description="true: status 400 and up, or none")] = False
    min_latency_ms: Latency | UnsetType = UNSET
    limit: PageSize = 100
    cursor: Cursor | UnsetType = UNSET


T = TypeVar("T")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)
DAY_MS = 86_400_000


def _bad(name: str, why: str) -> BadRequest:
    return BadRequest(f"Query parameter {name!r} {why}.", param=name, code="invalid_query")


def _ms(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= MAX_MS_DIGITS else None


def _date_ms(text: str) -> int | None:
    """A YYYY-MM-DD date's midnight (UTC) in ms, or None when `text` is not one."""
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return None
    return (day - _EPOCH.date()).days * DAY_MS


def window(since: int | None, until: int | None) -> tuple[int | None, int | None]:
    """A window that ends after it begins (a misordered pair is a mistake worth naming). The one
    check across two parameters, which a schema cannot state: its `until` says it in words."""
    if since is not None and until is not None and until <= since:
        raise _bad("until", "must be after 'since'")
    return since, until


def _ms_or_day(text: str) -> tuple[int, bool] | None:
    """(ms, False) for ms since the epoch, (the day's start in ms, True) for a date, else None."""
    ms = _ms(text)
    if ms is not None:
        return ms, False
    day = _date_ms(text)
    return None if day is None else (day, True)


def spend_bound(name: str, text: str | UnsetType, day_end: bool) -> int | None:
    """`since` or `until` of a spend report in ms; a date's `until` is its day's end (exclusive)."""
    if isinstance(text, UnsetType):
        return None
    got = _ms_or_day(text)
    if got is None:
        raise _bad(name, f"must be ms since the epoch (up to {MAX_MS_DIGITS} digits) or a date (YYYY-MM-DD)")
    ms, is_day = got
    return ms + DAY_MS if is_day and day_end else ms


def log_bound(name: str, text: str | UnsetType) -> int | None:
    """`since` or `until` of the request log in ms."""
    if isinstance(text, UnsetType):
        return None
    got = _ms_or_day(text)
    if got is not None:
        return got[0]
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _bad(name, "must be ms since the epoch or an ISO 8601 date or time (2026-03-01T12:00:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return (when - _EPOCH) // _MS


def status_filter(text: str | UnsetType) -> tuple[int | None, int | None]:
    """(the status, the status class): the struct's pattern has let only these two shapes through."""
    if isinstance(text, UnsetType):
        return None, None
    if text[1:].lower() == "xx":
        return None, int(text[0])
    return int(text), None


def encode_cursor(cursor: tuple[int, int] | None) -> str | None:
    return None if cursor is None else f"{cursor[0]}.{cursor[1]}"


def decode_cursor(text: str) -> tuple[int, int]:
    at, dot, seq = text.partition(".")
    if not (dot and at.isascii() and at.isdigit() and seq.isascii() and seq.isdigit()
            and len(at) <= 18 and len(seq) <= 18):
        raise _bad("cursor", "is not a cursor this API gave out (pass `next_cursor` as it came)")
    return int(at), int(seq)


def request_query(q: StreamQuery | RequestsQuery) -> RequestQuery:
    """The store's query for the list's parameters or the stream's."""
    status, status_class = status_filter(q.status)
    since = until = None
    cursor: tuple[int, int] | None = None
    limit = MAX_PAGE
    if isinstance(q, RequestsQuery):
        since, until = window(log_bound("since", q.since), log_bound("until", q.until))
        cursor = None if isinstance(q.cursor, UnsetType) else decode_cursor(q.cursor)
        limit = q.limit
    return RequestQuery(since=since, until=until, key_id=_given(q.key_id), model=_given(q.model), status=status,
                        status_class=status_class, errors=q.errors, min_latency_ms=_given(q.min_latency_ms),
                        cursor=cursor, limit=limit)


def _given(value: T | UnsetType) -> T | None:
    return None if isinstance(value, UnsetType) else value
