"""`clawdbot config validate [FILE]` and `clawdbot config show`.

`validate` checks a file the way `serve` would take it: the loader's checks (types, references,
`${VAR}`s, file:line errors), then the gateway built from it without listening (plugins' settings,
routing hooks, the request log's and telemetry's settings, store URLs), against a throwaway data
directory so that nothing of the real one is created or touched, and the bind rule (a host beyond
loopback needs a master key). Exit status 0 when it would start, 1 when not.

`show` prints the effective config (the file or the detected backend, after `${VAR}`s and the
CLAWDBOT_* overrides) with every secret masked (config/dump.py): YAML, or JSON with `--json`;
`--changed` only what differs from the defaults."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

from clawdbot.cli.output import Output
from clawdbot.cli.serve import DEFAULT_FILE, config_path, is_loopback, resolved_or_said
from clawdbot.config.schema import Config, ModelEntry

PLACEHOLDER = "change-me"  # what `clawdbot init` writes into .env.example for a secret


def register(sub: Any) -> None:
    p = sub.add_parser("config", help="check a config file, or show the effective config",
                       description="Check a config file, or show the effective config (secrets masked).")
    verbs = p.add_subparsers(dest="verb", required=True)
    v = verbs.add_parser("validate", help="check a config file the way `serve` would take it",
                         description="Load FILE and build the gateway from it without listening. "
                                     "Exit status 0: serve would start; 1: it would not.")
    v.add_argument("file", nargs="?", metavar="FILE",
                   help=f"the config (default: --config, CLAWDBOT_CONFIG, ./{DEFAULT_FILE})")
    v.add_argument("--config", help="the same as FILE")
    v.add_argument("--json", action="store_true", help="one JSON document")
    v.set_defaults(func=validate)
    s = verbs.add_parser("show", help="print the effective config, secrets masked",
                         description="The config serve would run with: the file (or the detected backend), "
                                     "${VAR}s and CLAWDBOT_* overrides applied, secrets masked.")
    s.add_argument("--config", help=f"YAML config file (env CLAWDBOT_CONFIG; default ./{DEFAULT_FILE})")
    s.add_argument("--changed", action="store_true", help="only what differs from the defaults")
    s.add_argument("--json", action="store_true", help="JSON instead of YAML")
    s.set_defaults(func=show, host=None, port=None, default_port=18789, log_format=None, log_level=None,
                   metrics_port=None)


# what the environment sets over the file (the same precedence as where each is read: state/build.py,
# state/redis.py, tenancy/service.py); CLAWDBOT_HOST, _PORT, _MASTER_KEY and _METRICS_PORT are applied
# by serve's resolve_config
ENV_FIELDS = {"CLAWDBOT_DATA_DIR": "data_dir", "CLAWDBOT_DATABASE_URL": "database_url",
              "CLAWDBOT_REDIS_URL": "redis_url", "CLAWDBOT_REDIS_PREFIX": "redis_prefix"}


def with_env(config: Config, env: dict[str, str]) -> Config:
    import msgspec

    changes: dict[str, Any] = {field: env[name] for name, field in ENV_FIELDS.items() if env.get(name)}
    if env.get("CLAWDBOT_KEY_SECRET"):
        changes["server"] = msgspec.structs.replace(config.server, key_secret=env["CLAWDBOT_KEY_SECRET"])
    return msgspec.structs.replace(config, **changes) if changes else config


def summary(config: Config) -> dict[str, Any]:
    return {
        "services": [{"name": s.name, "type": s.type, "endpoint": s.endpoint} for s in config.services],
        "models": sorted(config.models),
        "plugins": [p.id or p.name for p in config.plugins if p.enabled],
        "auth": bool(config.server.master_key),
    }


def warnings(config: Config) -> list[str]:
    """What would start but is probably not what was meant."""

    out = []
    if not config.services:
        out.append("no services: every model request will fail (run `clawdbot init` for a starting point)")
    routed = {t.split("/", 1)[0] for name in config.models for t in (config.model_targets(name) or [])}
    for svc in config.services:
        if config.models and svc.name not in routed and not svc.discover:
            out.append(f"service {svc.name}: no model routes to it and discovery is off")
    secrets = {"server.master_key": config.server.master_key, "server.key_secret": config.server.key_secret,
               "database_url": config.database_url, "redis_url": config.redis_url}
    for where, value in secrets.items():
        if value and PLACEHOLDER in value:
            out.append(f"{where} still holds the placeholder from .env.example: set a secret of your own")
    for name, entry in config.models.items():
        if isinstance(entry, ModelEntry) and entry.log_bodies and not config.request_log.enabled:
            out.append(f"models.{name}.log_bodies: the request log is off (request_log.enabled), so nothing is kept")
    return out


def check(path: str, env: dict[str, str]) -> tuple[Config | None, str | None]:
    """(config, None) when serve would start with it; (config or None, why not) otherwise."""
    from clawdbot.cli.serve import build_app
    from clawdbot.config.loader import ConfigError, load_config
    from clawdbot.observability.access import AccessLog

    try:
        config = load_config(path, env)
    except ConfigError as exc:
        return None, str(exc)
    host = env.get("CLAWDBOT_HOST") or config.server.host
    if not is_loopback(host) and not (env.get("CLAWDBOT_MASTER_KEY") or config.server.master_key):
        return config, (f"{path}: server.host: binding {host} needs a master key (server.master_key or "
                        f"CLAWDBOT_MASTER_KEY): anyone who can reach it could use your models")
    with tempfile.TemporaryDirectory(prefix="clawdbot-validate-") as scratch:
        try:
            build_app(config, AccessLog("text", lambda line: None), "serve", {**env, "CLAWDBOT_DATA_DIR": scratch},
                      watch_path=path)
        except (ConfigError, ValueError) as exc:
            return config, str(exc)
    return config, None


def validate(args: argparse.Namespace) -> int:
    out = Output(args.json)
    env = dict(os.environ)
    path = args.file or config_path(args, env)
    if path is None:
        msg = f"no config file: give FILE or --config, set CLAWDBOT_CONFIG, or write ./{DEFAULT_FILE} (clawdbot init)"
        if args.json:
            out.data({"ok": False, "file": None, "error": msg})
        else:
            print(f"clawdbot: {msg}", file=sys.stderr)
        return 1
    config, error = check(path, env)
    info = summary(config) if config is not None else {}
    notes = warnings(config) if config is not None else []
    if args.json:
        out.data({"ok": error is None, "file": path, "error": error, **info, "warnings": notes})
        return 0 if error is None else 1
    if error is not None:
        out.verdict("fail", f"{path}: serve would not start", error)
        return 1
    assert config is not None
    services = ", ".join(f"{s['name']} ({s['type']})" for s in info["services"]) or "none"
    out.verdict("ok", f"{path}: serve would start",
                f"services: {services}; models: {', '.join(info['models']) or 'discovered'}; "
                f"plugins: {', '.join(info['plugins']) or 'none'}; auth: {'on' if info['auth'] else 'off'}")
    for note in notes:
        out.verdict("warn", note)
    return 0


def show(args: argparse.Namespace) -> int:
    import yaml

    from clawdbot.config.dump import masked, plain

    out = Output(args.json)
    env = dict(os.environ)
    resolved = resolved_or_said(args, env)
    if resolved is None:
        return 1
    config, origin = resolved
    doc = masked(plain(with_env(config, env), full=not args.changed))
    if args.json:
        out.data(doc)
        return 0
    out.line(f"# {origin}", style="dim")
    out.line(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False).rstrip())
    return 0
