"""What the admin commands (`clawdbot keys`, `clawdbot spend`) share: the gateway's admin API over
HTTP with the master key from CLAWDBOT_MASTER_KEY, and how a command reports the outcome. The CLI
never opens the database itself: the gateway is the one place that does."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:18789"


class CliError(Exception):
    pass


class Client:
    def __init__(self, url: str, key: str) -> None:
        self.url = url.rstrip("/")
        self.key = key

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.exchange(method, path, body)[0]

    def exchange(self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 30,
                 failed: str | None = None) -> tuple[Any, dict[str, str]]:
        """The JSON answer and its headers (lower-case names). A refusal raises CliError with the
        gateway's message, after `failed` (default: the method and path)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read()), {k.lower(): v for k, v in resp.headers.items()}
        except urllib.error.HTTPError as exc:
            try:
                msg = json.loads(exc.read())["error"]["message"]
            except (ValueError, KeyError, TypeError):
                msg = exc.reason
            raise CliError(f"{failed or f'{method} {path}'}: {exc.code} {msg}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise CliError(f"cannot reach the gateway at {self.url}: {getattr(exc, 'reason', exc)}") from None


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("CLAWDBOT_URL", DEFAULT_URL), help=f"gateway URL ({DEFAULT_URL})")
    p.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")


def run(command: str, args: argparse.Namespace) -> int:
    """Calls `args.action(client, args)` and prints what it returns. Exit status: 0 done, 1 the
    gateway refused or cannot be reached, 2 no master key."""
    key = os.environ.get("CLAWDBOT_MASTER_KEY")
    if not key:
        print(f"clawdbot {command}: set CLAWDBOT_MASTER_KEY to the gateway's master key", file=sys.stderr)
        return 2
    try:
        out: str = args.action(Client(args.url, key), args)
    except CliError as exc:
        print(f"clawdbot {command}: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0
