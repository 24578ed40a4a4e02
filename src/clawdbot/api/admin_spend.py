"""GET /admin/api/spend: what requests cost, grouped by key, user, team, model, day or service.

`since` and `until` are UTC dates (YYYY-MM-DD; `until` is inclusive: the whole day counts) or ms
since the epoch (`until` then exclusive). The response echoes the bounds as ms, the half-open
window `since <= at < until` actually read. An unknown parameter is refused rather than ignored:
a misspelt filter would otherwise report everything as if it were one key's spend."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from clawdbot.core.errors import BadRequest
from clawdbot.state.spend_base import GROUPS, MAX_REPORT_ROWS, GroupBy, SpendStore, SpendTotals

PARAMS = ("group_by", "since", "until", "key_id", "user_id", "team_id", "model", "limit")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
DAY_MS = 86_400_000
EPOCH = dt.date(1970, 1, 1)
MICROS_PER_USD = 1_000_000


def _bound(q: dict[str, str], name: str, day_end: bool) -> int | None:
    text = q.get(name)
    if text is None:
        return None
    if text.isascii() and text.isdigit():
        if len(text) > 15:  # past the year 33658 in ms: a mistake or a probe, not a date
            raise BadRequest(f"Query parameter {name!r} is out of range.", param=name, code="invalid_query")
        return int(text)
    try:
        if not DATE.fullmatch(text):
            raise ValueError(text)
        ms = (dt.date.fromisoformat(text) - EPOCH).days * DAY_MS
    except ValueError:
        raise BadRequest(f"Query parameter {name!r} must be a UTC date (YYYY-MM-DD) or ms since the epoch.",
                         param=name, code="invalid_query") from None
    return ms + DAY_MS if day_end else ms


def _limit(q: dict[str, str]) -> int:
    text = q.get("limit", "100")
    if not (text.isascii() and text.isdigit() and len(text) <= 9) or not 1 <= int(text) <= MAX_REPORT_ROWS:
        raise BadRequest(f"Query parameter 'limit' must be an integer from 1 to {MAX_REPORT_ROWS}.",
                         param="limit", code="invalid_query")
    return int(text)


def _group_by(q: dict[str, str]) -> GroupBy:
    group_by = q.get("group_by", "key")
    if group_by not in GROUPS:
        raise BadRequest(f"Query parameter 'group_by' must be one of {', '.join(GROUPS)}.",
                         param="group_by", code="invalid_query")
    return group_by


def _amounts(t: SpendTotals) -> dict[str, Any]:
    return {"requests": t.requests, "prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens,
            "cost_usd": t.cost / MICROS_PER_USD, "cost_micros": t.cost}


async def spend_report(store: SpendStore, q: dict[str, str]) -> dict[str, Any]:
    for name in q:
        if name not in PARAMS:
            raise BadRequest(f"Unknown query parameter {name!r} (known: {', '.join(PARAMS)}).",
                             param=name, code="invalid_query")
    group_by = _group_by(q)
    since, until = _bound(q, "since", day_end=False), _bound(q, "until", day_end=True)
    if since is not None and until is not None and until <= since:
        raise BadRequest("Query parameter 'until' must be after 'since'.", param="until", code="invalid_query")
    report = await store.report(group_by, since_ms=since, until_ms=until, key_id=q.get("key_id"),
                                user_id=q.get("user_id"), team_id=q.get("team_id"), model=q.get("model"),
                                limit=_limit(q))
    return {
        "object": "list", "group_by": group_by, "since": since, "until": until,
        "data": [{"group": row.group, **_amounts(row)} for row in report.rows],
        "total": {**_amounts(report.total), "groups": report.groups},
    }
