"""`clawdbot serve` (one process), `clawdbot proxy` (the proxy layer alone, port 8080) and
`clawdbot gateway` (the web gateway layer, upstream CLAWDBOT_MODEL_ENDPOINT)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from clawdbot.config.schema import Config, Telemetry
from clawdbot.observability.access import AccessLog

if TYPE_CHECKING:
    from clawdbot.api.app import App
    from clawdbot.observability.tracing import Tracer

DEFAULT_FILE = "clawdbot.yaml"  # in the working directory: what `clawdbot init` writes
DRAIN_S = 10  # on SIGTERM: open requests and streams get this long to finish
ROLES = {
    "serve": (18789, "run the whole gateway in one process (default 127.0.0.1:18789)"),
    "proxy": (8080, "run the proxy layer alone (default 127.0.0.1:8080)"),
    "gateway": (18789, "run the web gateway layer; its upstream is CLAWDBOT_MODEL_ENDPOINT (the proxy)"),
}


def register(sub: Any) -> None:
    for role, (port, help_) in ROLES.items():
        p = sub.add_parser(role, help=help_, description=help_)
        p.add_argument("--config", help=f"YAML config file (env CLAWDBOT_CONFIG; default ./{DEFAULT_FILE} if present)")
        p.add_argument("--host", help="bind address (env CLAWDBOT_HOST; default 127.0.0.1)")
        p.add_argument("--port", type=int, help=f"port (env CLAWDBOT_PORT; default {port})")
        p.add_argument("--log-format", choices=["text", "json"], help="log line format (default text)")
        p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
        p.add_argument("--metrics-port", type=int,
                       help="also serve /metrics, without auth, on 127.0.0.1:PORT (env CLAWDBOT_METRICS_PORT); "
                            "with --workers N, worker i on PORT+i")
        p.add_argument("--workers", type=int,
                       help="N gateway processes on the port (env CLAWDBOT_WORKERS; default 1); N > 1 needs Redis "
                            "and a shared database (docs/deploy.md)")
        p.set_defaults(func=run, role=role, default_port=port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def config_path(args: argparse.Namespace, env: dict[str, str]) -> str | None:
    """--config, else CLAWDBOT_CONFIG, else ./clawdbot.yaml when there is one; None: detect a backend."""
    path: str | None = getattr(args, "config", None) or env.get("CLAWDBOT_CONFIG")
    if path:
        return path
    return DEFAULT_FILE if os.path.isfile(DEFAULT_FILE) else None


def resolve_config(args: argparse.Namespace, env: dict[str, str]) -> tuple[Config, str]:
    from clawdbot.config.autodetect import detect
    from clawdbot.config.loader import load_config

    path = config_path(args, env)
    if path:
        config, origin = load_config(path, env), f"config: {path}"
    else:
        config, origin = detect(env)
    server = config.server
    host = args.host or env.get("CLAWDBOT_HOST") or server.host
    port_env = env.get("CLAWDBOT_PORT")
    try:
        port = args.port or (int(port_env) if port_env else None) or server.port or args.default_port
    except ValueError:
        raise ValueError(f"CLAWDBOT_PORT must be a port number, not {port_env!r}") from None
    metrics_env = env.get("CLAWDBOT_METRICS_PORT")
    try:
        metrics_port = (getattr(args, "metrics_port", None) or (int(metrics_env) if metrics_env else None)
                        or config.metrics.port)
    except ValueError:
        raise ValueError(f"CLAWDBOT_METRICS_PORT must be a port number, not {metrics_env!r}") from None
    if metrics_port is not None and not 1 <= metrics_port <= 65535:
        raise ValueError(f"the metrics port must be in 1..65535, not {metrics_port}")
    if metrics_port == port:
        raise ValueError(f"the metrics port cannot be the gateway's own port {port}")
    config = msgspec.structs.replace(config, metrics=msgspec.structs.replace(config.metrics, port=metrics_port))
    server = msgspec.structs.replace(
        server,
        host=host,
        port=port,
        master_key=env.get("CLAWDBOT_MASTER_KEY") or server.master_key,
        log_format=args.log_format or server.log_format,
        log_level=args.log_level or server.log_level,
    )
    return msgspec.structs.replace(config, server=server), origin


def resolved_or_said(args: argparse.Namespace, env: dict[str, str]) -> tuple[Config, str] | None:
    """resolve_config; None when the config cannot be used, the reason said on stderr."""
    from clawdbot.config.loader import ConfigError

    try:
        return resolve_config(args, env)
    except ConfigError as exc:
        print(f"clawdbot: configuration error: {exc}", file=sys.stderr)
    except ValueError as exc:
        print(f"clawdbot: {exc}", file=sys.stderr)
    return None


def run(args: argparse.Namespace) -> int:
    from clawdbot.config.loader import ConfigError

    env = dict(os.environ)
    resolved = resolved_or_said(args, env)
    if resolved is None:
        return 2
    config, origin = resolved
    s = config.server
    # The data directory is fixed at start. Exported (when the environment does not set it) so that
    # what finds files there without the config sees the same one: a local service's pulled models
    # (config/local_models.py models_dir).
    os.environ.setdefault("CLAWDBOT_DATA_DIR", config.data_dir)
    if not is_loopback(s.host) and not s.master_key:
        print(
            f"clawdbot: refusing to bind {s.host}:{s.port} without a master key. Anyone who can reach "
            f"it could use your models. Set CLAWDBOT_MASTER_KEY (or server.master_key), or bind 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    if "*" in s.cors_origins and not s.master_key:
        print("clawdbot: refusing server.cors_origins \"*\" without a master key: any web page the user "
              "opens could use your models and read their answers. Set CLAWDBOT_MASTER_KEY (or "
              "server.master_key), or list the origins.", file=sys.stderr)
        return 2
    from clawdbot.cli.workers import worker_index
    from clawdbot.observability.logging import setup_logging

    handler = setup_logging(s.log_format, s.log_level)
    log = logging.getLogger(f"clawdbot.{args.role}")
    index = worker_index(env)
    if index is None:
        workers = workers_asked(args, env)
        if workers is None:
            return 2
        if workers != 1:
            return supervise(config, env, workers)
    else:  # one of `--workers N`: its own metrics port, and the port shared with SO_REUSEPORT
        config = as_worker(config, index)
    log.info("%s", origin)
    for svc in config.services:
        log.info("service %s: type=%s endpoint=%s", svc.name, svc.type, svc.endpoint or "-")
    # Hot reload (SIGHUP, POST /admin/reload, file watch) reads the file again the same way.
    path = config_path(args, env)
    reload_config = (lambda: resolve_config(args, env)[0]) if path else None
    try:
        app = build_app(config, AccessLog(s.log_format, handler.write_line), args.role, env,
                        reload_config=reload_config, watch_path=path)
    except ConfigError as exc:
        handler.flush()
        print(f"clawdbot: configuration error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a database or Redis URL nothing understands: said plainly, before anything starts
        handler.flush()
        print(f"clawdbot: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the data directory (spend journal, SQLite file) cannot be written: a read-only root
        handler.flush()
        where = exc.filename or config.data_dir
        print(f"clawdbot: cannot write {where}: {exc.strerror or exc}. The data directory must be writable "
              f"(CLAWDBOT_DATA_DIR or data_dir; in a container, a volume).", file=sys.stderr)
        return 2
    log.info("listening on http://%s:%d (auth %s)%s", s.host, s.port, "on" if s.master_key else "off",
             "" if index is None else f" as worker {index}")
    return serve_app(app, config, reuse_port=index is not None)


def workers_asked(args: argparse.Namespace, env: dict[str, str]) -> int | None:
    """--workers, else CLAWDBOT_WORKERS, else 1; None (said on stderr) when it is not a number."""
    given = getattr(args, "workers", None)
    if given is not None:
        return int(given)
    text = env.get("CLAWDBOT_WORKERS")
    try:
        return int(text) if text else 1
    except ValueError:
        print(f"clawdbot: CLAWDBOT_WORKERS must be a number, not {text!r}", file=sys.stderr)
        return None


def supervise(config: Config, env: dict[str, str], workers: int) -> int:
    """`--workers N`: N copies of this command, supervised (cli/workers.py)."""
    from clawdbot.cli.workers import Supervisor, check_port, shared_state_problem

    problem = shared_state_problem(config, env, workers)
    if problem is not None:
        print(f"clawdbot: {problem}.", file=sys.stderr)
        return 2
    s = config.server
    try:
        check_port(s.host, s.port or 18789)
    except OSError as exc:
        print(f"clawdbot: cannot listen on {s.host}:{s.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    logging.getLogger("clawdbot.workers").info("%d workers on http://%s:%d", workers, s.host, s.port)
    return Supervisor(sys.argv[1:], workers, env, DRAIN_S).run()


def as_worker(config: Config, index: int) -> Config:
    m = config.metrics
    if m.port is None:
        return config
    return msgspec.structs.replace(config, metrics=msgspec.structs.replace(m, port=m.port + index))


def build_app(config: Config, access: AccessLog, role: str = "serve", env: dict[str, str] | None = None, *,
              reload_config: Callable[[], Config] | None = None, watch_path: str | None = None) -> App:
    """Everything the process serves, built (hooks imported, stores chosen) before it listens.
    Raises ConfigError (a routing hook that does not load, at its file:line) or ValueError."""
    from clawdbot.api.app import App
    from clawdbot.config.loader import error_at
    from clawdbot.core.networks import networks
    from clawdbot.observability.request_log import RequestLog
    from clawdbot.observability.tracer_build import build_tracer
    from clawdbot.pipeline.capture import BodyCapture
    from clawdbot.pipeline.gateway import Gateway
    from clawdbot.pipeline.policy import Pipeline, PluginHost
    from clawdbot.routing.hook import HookError
    from clawdbot.state.build import build_request_log_store, build_response_store, data_dir
    from clawdbot.state.redis import redis_prefix, redis_url
    from clawdbot.tenancy.metering_build import build_metering
    from clawdbot.tenancy.service import build_tenancy
    from clawdbot.tenancy.throttle import AuthThrottle
    from clawdbot.web.build import build_web

    env = dict(os.environ) if env is None else env

    if role == "proxy":  # the proxy layer serves no page and no chat socket
        config = msgspec.structs.replace(config, web=msgspec.structs.replace(config.web, enabled=False))
    try:
        gateway = Gateway.from_config(config, reload_config, watch_path)
    except HookError as exc:
        if watch_path and exc.model is not None:
            raise error_at(watch_path, ("models", exc.model, "hook"), str(exc)) from None
        raise
    # Master key and virtual keys; rate limits, parallel limits, budgets and spend (tenancy/)
    tenancy = build_tenancy(config.server, config, env)
    metering = build_metering(config, env, tenancy)
    config_dir = os.path.dirname(os.path.abspath(watch_path)) if watch_path else os.getcwd()
    host = PluginHost(gateway, str(data_dir(config, env)), config_dir, redis_url(config, env),
                      redis_prefix(config, env))
    # every request's record (docs/observability.md, Request log): stored only when enabled
    rl = config.request_log
    request_log = RequestLog(rl, build_request_log_store(config, env) if rl.enabled else None)
    # the plugins built: ConfigError at file:line
    def tracer_for(settings: Telemetry) -> Tracer | None:
        return build_tracer(settings, env, role, BodyCapture)

    pipeline = Pipeline(gateway, metering, access, host, watch_path, build_response_store(config, env),
                        request_log=request_log, tracer=tracer_for(config.telemetry), tracer_factory=tracer_for)
    # failed keys per address, on /v1, the admin API, the login and the socket
    srv = config.server
    throttle = AuthThrottle(srv.auth_failures_burst, srv.auth_failures_per_minute,
                            trusted=networks(srv.trusted_proxies))
    web = build_web(config, pipeline, tenancy, role, env, throttle)
    mcp = None
    if config.mcp.servers:  # the MCP gateway (docs/mcp.md): the `mcp` SDK is imported only then
        from clawdbot.mcp import missing_extra

        missing = missing_extra()
        if missing is not None:
            raise ValueError(missing)
        from clawdbot.mcp.build import build_mcp

        mcp = build_mcp(config, env, gateway.metrics, pipeline, tenancy.store)
    else:  # added by a reload: said in the log, served after a restart
        from clawdbot.mcp import needs_restart

        gateway.reload_checks.append(needs_restart)
    return App(pipeline, config.server, tenancy, web, throttle=throttle, metrics_port=config.metrics.port, mcp=mcp)


def serve_app(app: App, config: Config, reuse_port: bool = False) -> int:
    """reuse_port: a worker of `--workers N`, in the port's SO_REUSEPORT group (cli/workers.py)."""
    import uvicorn

    from clawdbot.api.protocol import bounded_protocol
    from clawdbot.cli.server import StoppingServer
    from clawdbot.cli.workers import reuse_port_socket

    s = config.server
    uv = uvicorn.Config(
        app, host=s.host, port=s.port or 18789, loop="uvloop", http=bounded_protocol(s), lifespan="on",
        log_config=None, access_log=False, server_header=False, proxy_headers=False, timeout_graceful_shutdown=DRAIN_S,
        # The sans-I/O websockets protocol supports refusing an upgrade with any status (401, not
        # only 403) and drops a frame over the limit with close code 1009 before buffering it.
        # Chat frames are small JSON: compressing each costs CPU and per-socket memory for little.
        ws="websockets-sansio", ws_max_size=config.web.max_frame_bytes, ws_per_message_deflate=False,
    )
    server = StoppingServer(uv, app.stopping)
    if reuse_port:
        try:
            sock = reuse_port_socket(s.host, s.port or 18789)
        except OSError as exc:
            print(f"clawdbot: cannot listen on {s.host}:{s.port}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        server.run(sockets=[sock])
    else:
        server.run()
    return 0 if server.started else 1
