"""`clawdbot tail`: requests as they pass through a running gateway, one line each (the seed's debug
proxy view), from GET /admin/api/requests/stream with the master key. Coloured on a terminal, plain
when piped (or with NO_COLOR), `--json` for one JSON object per line. Works whether or not the
request log stores anything (request_log.enabled)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import urlencode

from clawdbot.cli.admin_http import DEFAULT_URL

RESET, DIM, RED, YELLOW, GREEN, CYAN = "\033[0m", "\033[2m", "\033[31m", "\033[33m", "\033[32m", "\033[36m"


def register(sub: Any) -> None:
    p = sub.add_parser("tail", help="follow requests live as they pass through a running gateway",
                       description="Requests as they end, one line each, from a running gateway (needs "
                                   "CLAWDBOT_MASTER_KEY). Ctrl-C stops.")
    p.add_argument("--url", default=os.environ.get("CLAWDBOT_URL", DEFAULT_URL), help=f"gateway URL ({DEFAULT_URL})")
    p.add_argument("--json", action="store_true", help="one JSON object per line, for scripts")
    p.add_argument("--model", help="only requests for this model (as the client named it)")
    p.add_argument("--key", dest="key_id", metavar="ID", help="only this virtual key's requests")
    p.add_argument("--status", help="only this status (200) or class (4xx, 5xx)")
    p.add_argument("--min-latency", dest="min_latency_ms", type=float, metavar="MS",
                   help="only requests that took at least this many milliseconds")
    p.add_argument("--errors", action="store_true", help="only failed requests (status 400 and up)")
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="colour the lines (auto: on a terminal, unless NO_COLOR is set)")
    p.set_defaults(func=run)


def stream_path(args: argparse.Namespace) -> str:
    params = {"model": args.model, "key_id": args.key_id, "status": args.status,
              "min_latency_ms": args.min_latency_ms, "errors": "true" if args.errors else None}
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return "/admin/api/requests/stream" + (f"?{query}" if query else "")


def events(lines: Iterator[bytes]) -> Iterator[tuple[str, str]]:
    """(event, data) per Server-Sent Event; comments skipped."""
    name, data = "message", list[str]()
    for raw in lines:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        elif line.startswith("event:"):
            name = line[6:].strip()


def use_colour(choice: str, out: IO[str]) -> bool:
    if choice != "auto":
        return choice == "always"
    return out.isatty() and not os.environ.get("NO_COLOR")


def line(rec: dict[str, Any], colour: bool) -> str:
    """One request: time, status, model -> where it went, latency (time to first token), tokens,
    cost, key, what plugins did, request id."""
    def c(code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if colour else text

    at = dt.datetime.fromtimestamp(rec["at"] / 1000).strftime("%H:%M:%S.%f")[:-3]
    status = rec["status"]
    tint = GREEN if 0 < status < 400 else YELLOW if status < 500 and status != 0 else RED
    where = rec.get("service") or "-"
    if rec.get("upstream_model"):
        where += f"/{rec['upstream_model']}"
    attempts = rec.get("attempts") or []
    if len(attempts) > 1:
        where += f" ({len(attempts)} attempts)"
    timing = f"{rec['latency_ms']:.0f}ms"
    if rec.get("ttft_ms") is not None and rec.get("stream"):
        timing += f" ttft {rec['ttft_ms']:.0f}ms"
    parts = [c(DIM, at), c(tint, str(status)), f"{rec.get('model') or '-'} -> {where}", timing]
    if rec.get("prompt_tokens") is not None or rec.get("completion_tokens") is not None:
        parts.append(f"{rec.get('prompt_tokens') or 0}+{rec.get('completion_tokens') or 0} tok")
    if rec.get("cost_micros"):
        parts.append(f"${rec['cost_micros'] / 1_000_000:.6f}".rstrip("0"))
    parts.append(rec.get("key_id") or rec.get("principal") or "-")
    if rec.get("cached"):
        parts.append(c(CYAN, "cached"))
    for note in rec.get("plugins") or ():
        parts.append(c(CYAN, f"[{note}]"))
    if rec.get("error"):
        parts.append(c(RED, str(rec["error"])[:200]))
    parts.append(c(DIM, rec["id"]))
    return "  ".join(parts)


def run(args: argparse.Namespace) -> int:
    key = os.environ.get("CLAWDBOT_MASTER_KEY")
    if not key:
        print("clawdbot tail: set CLAWDBOT_MASTER_KEY to the gateway's master key", file=sys.stderr)
        return 2
    url = args.url.rstrip("/") + stream_path(args)
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}", "Accept": "text/event-stream"})
    colour = use_colour(args.color, sys.stdout)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:  # the server's keep-alive comes every 15 s
            print(f"clawdbot tail: following {args.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
            for name, data in events(iter(resp.readline, b"")):
                if name == "dropped":
                    print("clawdbot tail: the gateway dropped this stream (it fell too far behind)", file=sys.stderr)
                    return 1
                if name != "message":
                    continue
                print(data if args.json else line(json.loads(data), colour), flush=True)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `clawdbot tail | head`: the reader is done
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
        return 0
    except urllib.error.HTTPError as exc:
        try:
            msg = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            msg = exc.reason
        print(f"clawdbot tail: {exc.code} {msg}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"clawdbot tail: cannot reach the gateway at {args.url}: {getattr(exc, 'reason', exc)}",
              file=sys.stderr)
        return 1
    print("clawdbot tail: the gateway ended the stream", file=sys.stderr)
    return 0
