"""GET /admin/api/spend: what requests cost, grouped by key, user, team, model, day or service.

`since` and `until` are UTC dates (YYYY-MM-DD; `until` is inclusive: the whole day counts) or ms
since the epoch (`until` then exclusive). The response echoes the bounds as ms, the half-open
window `since <= at < until` actually read (`until` must come after `since`). An
unknown parameter is refused rather than ignored: a misspelt filter would otherwise report
everything as if it were one key's spend. The parameters are api/admin_queries.py's SpendQuery."""

from __future__ import annotations

from typing import Any

from msgspec import UnsetType

from clawdbot.api.admin_queries import SpendQuery, spend_bound, window
from clawdbot.api.http import decode_query
from clawdbot.state.spend_base import SpendStore, SpendTotals

MICROS_PER_USD = 1_000_000


def _amounts(t: SpendTotals) -> dict[str, Any]:
    return {"requests": t.requests, "prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens,
            "cost_usd": t.cost / MICROS_PER_USD, "cost_micros": t.cost}


def _given(value: str | UnsetType) -> str | None:
    return None if isinstance(value, UnsetType) else value


async def spend_report(store: SpendStore, q: dict[str, str]) -> dict[str, Any]:
    p = decode_query(q, SpendQuery)
    since, until = window(spend_bound("since", p.since, day_end=False), spend_bound("until", p.until, day_end=True))
    report = await store.report(p.group_by, since_ms=since, until_ms=until, key_id=_given(p.key_id),
                                user_id=_given(p.user_id), team_id=_given(p.team_id), model=_given(p.model),
                                limit=p.limit)
    return {
        "object": "list", "group_by": p.group_by, "since": since, "until": until,
        "data": [{"group": row.group, **_amounts(row)} for row in report.rows],
        "total": {**_amounts(report.total), "groups": report.groups},
    }
