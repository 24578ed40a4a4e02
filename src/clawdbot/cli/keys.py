"""`clawdbot keys create|list|show|revoke`: virtual keys, through a running gateway's admin API
(--url, default http://127.0.0.1:18789) with the master key from CLAWDBOT_MASTER_KEY. The CLI never
opens the database itself: the gateway is the one place keys are hashed and audited."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

from clawdbot.cli.admin_http import Client, CliError, add_options
from clawdbot.cli.admin_http import run as run_admin
from clawdbot.cli.output import table

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
LIST_COLUMNS = ("id", "name", "hint", "models", "rpm", "tpm", "budget", "expires", "status")


def register(sub: Any) -> None:
    p = sub.add_parser("keys", help="create, list, show and revoke virtual keys",
                       description="Manage virtual keys through a running gateway (needs CLAWDBOT_MASTER_KEY).")
    add_options(p)
    p.set_defaults(func=lambda a: _usage(p))
    ks = p.add_subparsers(dest="keys_command")
    c = ks.add_parser("create", help="create a key (shown once)")
    c.add_argument("--name")
    c.add_argument("--models", help="allowed models, comma-separated (default: all)")
    c.add_argument("--rpm", type=int)
    c.add_argument("--tpm", type=int)
    c.add_argument("--max-parallel", type=int)
    c.add_argument("--budget", type=float, help="budget in USD per --period")
    c.add_argument("--period", choices=["day", "month", "total"])
    c.add_argument("--expires-in", help="e.g. 3600, 90m, 12h, 30d")
    c.add_argument("--tags", help="traffic tags, comma-separated (the first routes the key's requests)")
    c.add_argument("--user", help="owner user id")
    c.add_argument("--team", help="owner team id")
    c.add_argument("--metadata", help='JSON object, e.g. {"priority": "high"}')
    c.add_argument("--admin", action="store_true", help="the key may use the admin API")
    c.set_defaults(func=run, action=create)
    ls = ks.add_parser("list", help="list keys, newest first")
    ls.add_argument("--limit", type=int, default=100)
    ls.set_defaults(func=run, action=list_keys)
    for name, action, help_ in (("show", show, "show one key"), ("revoke", revoke, "revoke a key")):
        sp = ks.add_parser(name, help=help_)
        sp.add_argument("id")
        sp.set_defaults(func=run, action=action)


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    return run_admin("keys", args)


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if m is None:
        raise CliError(f"--expires-in: not a duration: {text!r} (e.g. 3600, 90m, 12h, 30d)")
    return float(m.group(1)) * UNITS[m.group(2) or "s"]


def _csv(text: str | None) -> list[str] | None:
    return None if text is None else [x.strip() for x in text.split(",") if x.strip()]


def create_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"name": args.name, "allowed_models": _csv(args.models), "rpm": args.rpm,
                            "tpm": args.tpm, "max_parallel": args.max_parallel, "budget_usd": args.budget,
                            "budget_period": args.period, "tags": _csv(args.tags), "user_id": args.user,
                            "team_id": args.team}
    if args.metadata:
        try:
            meta = json.loads(args.metadata)
        except ValueError:
            raise CliError("--metadata must be a JSON object") from None
        if not isinstance(meta, dict):
            raise CliError("--metadata must be a JSON object")
        body["metadata"] = meta
    if args.admin:
        body["metadata"] = {**body.get("metadata", {}), "role": "admin"}
    if args.expires_in:
        body["expires_in"] = parse_duration(args.expires_in)
    return {k: v for k, v in body.items() if v is not None}


def create(client: Client, args: argparse.Namespace) -> str:
    out = client.call("POST", "/admin/api/keys", create_body(args))
    if args.json:
        return json.dumps(out, indent=2)
    return (f"{out['key']}\n\nThis is the only time the key is shown: store it now.\n\n"
            + vertical(out, skip=("key",)))


def list_keys(client: Client, args: argparse.Namespace) -> str:
    out = client.call("GET", f"/admin/api/keys?limit={args.limit}")
    if args.json:
        return json.dumps(out, indent=2)
    return table([row(k) for k in out["data"]], LIST_COLUMNS) if out["data"] else "no keys"


def show(client: Client, args: argparse.Namespace) -> str:
    out = client.call("GET", f"/admin/api/keys/{args.id}")
    return json.dumps(out, indent=2) if args.json else vertical(out)


def revoke(client: Client, args: argparse.Namespace) -> str:
    out = client.call("POST", f"/admin/api/keys/{args.id}/revoke")
    return json.dumps(out, indent=2) if args.json else f"revoked {out['id']} ({out['hint']})"


# --- tables ------------------------------------------------------------------------------------


def stamp(ms: int | None) -> str:
    return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))


def status(key: dict[str, Any], now_ms: float | None = None) -> str:
    now_ms = time.time() * 1000 if now_ms is None else now_ms
    if key.get("revoked_at") is not None:
        return "revoked"
    if key.get("expires_at") is not None and key["expires_at"] <= now_ms:
        return "expired"
    return "active"


def row(key: dict[str, Any]) -> dict[str, str]:
    budget = "-" if key.get("budget_usd") is None else f"${key['budget_usd']:g}/{key.get('budget_period') or 'total'}"
    models = key.get("allowed_models")
    return {"id": key["id"], "name": key.get("name") or "-", "hint": key["hint"],
            "models": "all" if models is None else ",".join(models) or "none",
            "rpm": _num(key.get("rpm")), "tpm": _num(key.get("tpm")), "budget": budget,
            "expires": stamp(key.get("expires_at")), "status": status(key)}


def _num(v: int | None) -> str:
    return "-" if v is None else str(v)


def vertical(record: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    shown = {**record, "status": status(record)}
    for k in ("expires_at", "revoked_at", "created_at", "updated_at"):
        if k in shown:
            shown[k] = stamp(shown[k])
    items = [(k, v) for k, v in shown.items() if k not in skip]
    width = max(len(k) for k, _ in items)
    return "\n".join(f"{k.ljust(width)}  {_text(v)}" for k, v in items)


def _text(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):
        return ", ".join(map(str, v)) or "(none)"
    if isinstance(v, dict):
        return json.dumps(v)
    return str(v)
