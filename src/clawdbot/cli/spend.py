"""`clawdbot spend`: what requests cost, grouped by key, user, team, model, day or service, read
from a running gateway's admin API (GET /admin/api/spend) with the master key."""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import urlencode

from clawdbot.cli.admin_http import Client, add_options, run
from clawdbot.cli.output import table
from clawdbot.state.spend_base import GROUPS

NUMBERS = ("requests", "prompt", "completion", "cost")
FILTERS = {"key": "key_id", "user": "user_id", "team": "team_id", "model": "model"}
MICROS_PER_USD = 1_000_000


def register(sub: Any) -> None:
    p = sub.add_parser("spend", help="report spend by key, user, team, model, day or service",
                       description="Spend recorded by a running gateway (needs CLAWDBOT_MASTER_KEY). "
                                   "Dates are UTC, YYYY-MM-DD; --until is inclusive.")
    add_options(p)
    p.add_argument("--by", choices=GROUPS, default="key", help="group by (default: key)")
    p.add_argument("--since", metavar="DATE", help="from this day (or ms since the epoch)")
    p.add_argument("--until", metavar="DATE", help="up to and including this day (or ms, exclusive)")
    for flag, param in FILTERS.items():
        p.add_argument(f"--{flag}", dest=param, metavar="M" if flag == "model" else "ID", help=f"only this {flag}")
    p.add_argument("--limit", type=int, help="at most this many rows (default 100)")
    p.set_defaults(func=lambda a: run("spend", a), action=report)


def query(args: argparse.Namespace) -> str:
    params = {"group_by": args.by, "since": args.since, "until": args.until, "limit": args.limit,
              **{param: getattr(args, param) for param in FILTERS.values()}}
    return urlencode({k: v for k, v in params.items() if v is not None})


def usd(micros: int) -> str:
    """Exact, from integer micro-dollars: $1,234.50, $0.000125 (at least cents, no trailing zeros)."""
    sign = "-" if micros < 0 else ""
    dollars, fraction = divmod(abs(micros), MICROS_PER_USD)
    return f"{sign}${dollars:,}.{f'{fraction:06d}'.rstrip('0').ljust(2, '0')}"


def _cells(by: str, group: str | None, amounts: dict[str, Any]) -> dict[str, str]:
    return {by: group if group is not None else "(none)", "requests": f"{amounts['requests']:,}",
            "prompt": f"{amounts['prompt_tokens']:,}", "completion": f"{amounts['completion_tokens']:,}",
            "cost": usd(amounts["cost_micros"])}


def render(out: dict[str, Any]) -> str:
    by = out["group_by"]
    if not out["data"]:
        return "no spend recorded"
    rows = [_cells(by, r["group"], r) for r in out["data"]]
    total = out["total"]
    rows.append(_cells(by, "TOTAL", total))
    text = table(rows, (by, *NUMBERS), right=NUMBERS)
    if total["groups"] > len(out["data"]):
        text += f"\n({len(out['data'])} of {total['groups']} {by} groups shown; the total counts all; see --limit)"
    return text


def report(client: Client, args: argparse.Namespace) -> str:
    out = client.call("GET", f"/admin/api/spend?{query(args)}")
    return json.dumps(out, indent=2) if args.json else render(out)
