"""`clawdbot doctor`: the first seed's troubleshooting table, automated. Each check prints a verdict,
what it saw and, when it did not pass, the fix (cli/doctor_checks.py):

  config loads (as `config validate`) · the port is free or a clawdbot's · a master key when bound
  beyond loopback · each service reachable, its models present (Ollama: pulled), its credentials
  accepted, a one-token completion and its latency · the chat page and socket of a running gateway ·
  the database reachable and migrated · Redis reachable · the clock and time zone · disk space and
  permissions of the data directory.

Exit status 0 when nothing failed (warnings pass), 1 otherwise; `--json` for scripts. It writes
nothing: no data directory, no migration, no pull."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from clawdbot.cli.doctor_checks import (
    Check,
    bind_check,
    clock_check,
    database_check,
    disk_check,
    fail,
    ok,
    page_checks,
    port_check,
    probe_port,
    redis_check,
    service_checks,
)
from clawdbot.cli.output import Output
from clawdbot.cli.serve import DEFAULT_FILE, config_path, resolve_config
from clawdbot.config.schema import Config


def register(sub: Any) -> None:
    p = sub.add_parser("doctor", help="check the setup: config, ports, services, database, Redis, disk",
                       description="Check everything serve needs, with the fix for what fails. "
                                   "Exit status 0: nothing failed.")
    p.add_argument("--config", help=f"YAML config file (env CLAWDBOT_CONFIG; default ./{DEFAULT_FILE})")
    p.add_argument("--port", type=int, help="the port serve would use (env CLAWDBOT_PORT)")
    p.add_argument("--host", help="the address serve would bind (env CLAWDBOT_HOST)")
    p.add_argument("--json", action="store_true", help="one JSON document")
    p.set_defaults(func=run, default_port=18789, log_format=None, log_level=None, metrics_port=None)


def load(args: argparse.Namespace, env: dict[str, str]) -> tuple[Config | None, Check]:
    """The effective config and the verdict on it."""
    from clawdbot.cli.config_cmd import check
    from clawdbot.config.loader import ConfigError

    path = config_path(args, env)
    if path is not None:
        _, error = check(path, env)
        if error is not None:
            return None, fail("config", error, f"fix {path} (`clawdbot config validate` says the same)")
    try:
        config, origin = resolve_config(args, env)
    except (ConfigError, ValueError) as exc:
        return None, fail("config", str(exc), "fix the setting it names")
    services = ", ".join(s.name for s in config.services) or "none"
    return config, ok("config", f"{origin}; services: {services}")


async def diagnose(config: Config, env: dict[str, str]) -> list[Check]:
    s = config.server
    host, port = s.host, s.port or 18789
    state = await asyncio.to_thread(probe_port, host, port)
    checks = [port_check(host, port, state), bind_check(host, s.master_key)]
    if not config.services:
        checks.append(fail("services", "none configured", "add one (`clawdbot init` writes a config)"))
    for result in await asyncio.gather(*(service_checks(config, svc) for svc in config.services)):
        checks.extend(result)
    if state == "clawdbot":
        checks.extend(await page_checks(host, port, s.master_key))
    else:
        checks.append(Check("chat page and socket", "skip", f"no gateway running on {host}:{port}: start "
                                                            "`clawdbot serve` and run doctor again to check them"))
    checks.append(await database_check(config, env))
    checks.append(await redis_check(config, env))
    checks.append(clock_check(config))
    checks.append(disk_check(config, env))
    return checks


def run(args: argparse.Namespace) -> int:
    out = Output(args.json)
    env = dict(os.environ)
    config, verdict = load(args, env)
    checks = [verdict]
    if config is not None:
        checks.extend(asyncio.run(diagnose(config, env)))
    passed = not any(c.status == "fail" for c in checks)
    if args.json:
        import msgspec

        out.data({"ok": passed, "checks": msgspec.to_builtins(checks)})
        return 0 if passed else 1
    for c in checks:
        detail = c.summary + (f"\nfix: {c.fix}" if c.fix else "")
        out.verdict(c.status, c.name, detail.replace("\n", "\n       "))
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    out.line()
    out.line("all checks passed" + (f" ({warned} warning{'s' * (warned != 1)})" if warned else "") if passed
             else f"{failed} check{'s' * (failed != 1)} failed", style="green" if passed else "red")
    return 0 if passed else 1
