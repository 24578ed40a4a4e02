"""The checks `clawdbot doctor` runs (cli/doctor.py): the first seed's troubleshooting table, each
check a verdict (ok, warn, fail, skip), what it saw, and the fix when it failed. Nothing here writes:
no data directory is created, no database migrated, no model pulled."""

from __future__ import annotations

import asyncio
import http.client
import os
import shutil
import socket
import sqlite3
import time
import urllib.parse
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from clawdbot.config.schema import Config, Service

CHECK_TIMEOUT_S = 10.0  # a service, the database, Redis: each answers within this or fails
COMPLETION_TIMEOUT_S = 120.0  # a one-token completion (a local model loads first)
LOW_DISK_BYTES = 1 << 30
MIN_DISK_BYTES = 100 << 20


class Check(msgspec.Struct):
    name: str  # what is checked, e.g. "service ollama: reachable"
    status: str  # ok | warn | fail | skip
    summary: str  # what was seen
    fix: str = ""  # what to do, when it did not pass


def ok(name: str, summary: str) -> Check:
    return Check(name, "ok", summary)


def fail(name: str, summary: str, fix: str) -> Check:
    return Check(name, "fail", summary, fix)


# -- the gateway's own address -----------------------------------------------------------------------


def probe_port(host: str, port: int) -> str:
    """"free", "clawdbot" (a clawdbot answers there) or "taken" (something else listens)."""
    target = "127.0.0.1" if host in ("0.0.0.0", "", "localhost") else ("::1" if host == "::" else host)
    try:
        with socket.create_connection((target, port), timeout=2.0):
            pass
    except OSError:
        return "free"
    conn = http.client.HTTPConnection(target, port, timeout=3.0)
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        body = resp.read(256)
        ours = resp.status == 200 and body == b'{"status":"ok"}' and resp.getheader("x-request-id") is not None
        return "clawdbot" if ours else "taken"
    except (OSError, http.client.HTTPException):
        return "taken"
    finally:
        conn.close()


def port_check(host: str, port: int, state: str) -> Check:
    name = f"port {host}:{port}"
    if state == "free":
        return ok(name, "free: serve can listen there")
    if state == "clawdbot":
        return ok(name, "a clawdbot gateway is running there (its page and socket are checked below)")
    return fail(name, "another program listens there",
                f"stop it, or pick another port: --port, CLAWDBOT_PORT or server.port "
                f"(`ss -ltnp 'sport = :{port}'` names the program)")


def bind_check(host: str, master_key: str | None) -> Check:
    from clawdbot.cli.serve import is_loopback

    name = "master key"
    if is_loopback(host):
        return ok(name, f"bound to {host} (loopback): {'set' if master_key else 'not needed'}")
    if master_key:
        return ok(name, f"set, as {host} is reachable from other machines")
    return fail(name, f"{host} is reachable from other machines and no master key is set",
                "set CLAWDBOT_MASTER_KEY (or server.master_key), or bind 127.0.0.1")


# -- services --------------------------------------------------------------------------------------


def service_models(config: Config, svc: Service) -> list[str]:
    """The upstream models the config routes to this service (the targets that name one)."""
    out: list[str] = []
    for name in config.models:
        for target in config.model_targets(name) or []:
            service, slash, model = target.partition("/")
            if service == svc.name and slash and model not in out:
                out.append(model)
    return out


def _refused(exc: BaseException) -> int | None:
    status = getattr(exc, "upstream_status", None)
    return status if status in (401, 403) else None


async def service_checks(config: Config, svc: Service) -> list[Check]:
    """Reachable; the models the config names present (Ollama: pulled); credentials accepted; a
    one-token completion answers, and how fast."""
    from clawdbot.core.context import RequestContext
    from clawdbot.core.types import ChatRequest, Message
    from clawdbot.providers.base import Prober
    from clawdbot.providers.registry import build_provider

    label = f"service {svc.name} ({svc.type})"
    provider: Any = build_provider(svc)
    out: list[Check] = []
    try:
        models: list[str] = []
        if isinstance(provider, Prober):
            try:
                probe = await asyncio.wait_for(provider.probe(), CHECK_TIMEOUT_S)
            except TimeoutError:
                return [fail(f"{label}: reachable", f"no answer within {CHECK_TIMEOUT_S:.0f} s",
                             f"is the server at {svc.endpoint} up? check `endpoint` and the network")]
            if not probe.ok:
                detail = probe.detail or "unreachable"
                if probe.status in (401, 403):  # not a "401" in the text: a port 40337 has one
                    return [fail(f"{label}: credentials", detail,
                                 "the upstream refused the key: check auth.key (or the ${VAR} it reads)")]
                return [fail(f"{label}: reachable", detail,
                             f"start the server or fix `endpoint` ({svc.endpoint or 'none'})")]
            latency = f" in {probe.latency_ms:.0f} ms" if probe.latency_ms is not None else ""
            out.append(ok(f"{label}: reachable", f"{probe.detail or 'answers'}{latency}"))
            models = list(probe.models or [])
        wanted = service_models(config, svc)
        if models and wanted:
            missing = [m for m in wanted if m not in models and f"{m}:latest" not in models]
            if missing:
                fix = (f"ollama pull {missing[0]} (or clawdbot models pull {missing[0]})" if svc.type == "ollama"
                       else "fix the model names in `models:`, or serve them upstream")
                out.append(fail(f"{label}: models", f"not served: {', '.join(missing)} (served: "
                                f"{', '.join(models[:8]) or 'none'})", fix))
            else:
                out.append(ok(f"{label}: models", f"serves {', '.join(wanted)}"))
        model = (wanted[0] if wanted else None) or svc.model_id or (models[0] if models else None) \
            or getattr(provider, "model_name", None) or getattr(provider, "model", None)
        if model is None:
            out.append(Check(f"{label}: completion", "skip", "no model to ask: none configured or listed"))
            return out
        req = ChatRequest(model=model, messages=[Message("user", "Say OK.")], max_tokens=1, temperature=0.0)
        started = time.perf_counter()
        try:
            await asyncio.wait_for(provider.chat(req, RequestContext("clawdbot-doctor")), COMPLETION_TIMEOUT_S)
        except Exception as exc:
            status = _refused(exc)
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            if status is not None:
                out.append(fail(f"{label}: credentials", f"a completion was refused ({status}): {message}",
                                "the upstream refused the key: check auth.key (or the ${VAR} it reads)"))
            else:
                out.append(fail(f"{label}: completion", f"{model}: {message}",
                                "see the message; `clawdbot models list` shows what can be routed"))
            return out
        ms = (time.perf_counter() - started) * 1000.0
        out.append(ok(f"{label}: completion", f"{model} answered one token in {ms:.0f} ms"))
        return out
    finally:
        close = getattr(provider, "close", None)
        if close is not None:
            await close()


# -- the running gateway's page and socket --------------------------------------------------------------


async def page_checks(host: str, port: int, master_key: str | None) -> list[Check]:
    import websockets

    target = "127.0.0.1" if host in ("0.0.0.0", "", "localhost") else host
    out = []

    def get_page() -> tuple[int, str]:
        conn = http.client.HTTPConnection(target, port, timeout=CHECK_TIMEOUT_S)
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            return resp.status, resp.getheader("content-type") or ""
        finally:
            conn.close()

    try:
        status, kind = await asyncio.to_thread(get_page)
    except (OSError, http.client.HTTPException) as exc:
        return [fail("chat page", f"GET / failed: {exc}", "is the gateway still running? see its log")]
    if status == 200 and kind.startswith("text/html"):
        out.append(ok("chat page", f"http://{target}:{port}/ answers"))
    elif status in (302, 303, 401) and master_key:
        out.append(ok("chat page", f"answers {status}: the login (a master key is set)"))
    else:
        out.append(fail("chat page", f"GET / answered {status} {kind}", "is `web.enabled` false? (the proxy role "
                                                                        "serves no page)"))
    headers = {"Authorization": f"Bearer {master_key}"} if master_key else {}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            async with websockets.connect(f"ws://{target}:{port}/ws", additional_headers=headers,
                                          origin=websockets.Origin(f"http://{target}:{port}")):
                pass
        out.append(ok("chat socket", f"ws://{target}:{port}/ws accepts a connection"))
    except Exception as exc:
        out.append(fail("chat socket", f"the WebSocket handshake failed: {type(exc).__name__}: {exc}",
                        "a proxy in front must pass `Upgrade`; see docs/websocket.md"))
    return out


# -- state ---------------------------------------------------------------------------------------------


def data_path(config: Config, env: Mapping[str, str]) -> Path:
    return Path(env.get("CLAWDBOT_DATA_DIR") or config.data_dir).expanduser()


def sqlite_revision(path: Path) -> str | None:
    from clawdbot.state.revision import VERSION_TABLE

    conn = sqlite3.connect(f"file:{urllib.parse.quote(str(path))}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()
    return None if row is None else str(row[0])


async def sql_revision(url: str) -> str | None:
    import sqlalchemy as sa

    from clawdbot.state.revision import VERSION_TABLE
    from clawdbot.state.sql import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            try:
                row = (await conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))).first()
            except sa.exc.ProgrammingError:
                return None
    finally:
        await engine.dispose()
    return None if row is None else str(row[0])


async def database_check(config: Config, env: Mapping[str, str]) -> Check:
    from clawdbot.state.build import DATABASE_FILE
    from clawdbot.state.revision import SCHEMA_HEAD

    url = env.get("CLAWDBOT_DATABASE_URL") or config.database_url
    if url is not None and url.startswith("memory:"):
        return ok("database", "in memory (memory://): nothing kept across restarts")
    if url is None:
        path = data_path(config, env) / DATABASE_FILE
        if not path.exists():
            return ok("database", f"SQLite {path}: created at the first start")
        where = f"SQLite {path}"
        try:
            revision = await asyncio.to_thread(sqlite_revision, path)
        except sqlite3.Error as exc:
            return fail("database", f"{where}: {exc}", "is it a clawdbot database? check its permissions")
    else:
        from clawdbot.state.sql import redact

        try:
            where = redact(url)
            revision = await asyncio.wait_for(sql_revision(url), CHECK_TIMEOUT_S)
        except ImportError as exc:
            return fail("database", f"{url.partition(':')[0]}: a driver is missing ({exc.name})",
                        "install the extra: pip install 'clawdbot[postgres]'")
        except Exception as exc:
            return fail("database", f"cannot reach it: {type(exc).__name__}: {str(exc)[:200]}",
                        "is the server up, and the URL right? (CLAWDBOT_DATABASE_URL or database_url)")
    if revision == SCHEMA_HEAD:
        return ok("database", f"{where}: reachable, schema {revision} (current)")
    if revision is None or revision < SCHEMA_HEAD:
        return Check("database", "warn", f"{where}: reachable, schema {revision or 'none'}, not {SCHEMA_HEAD}",
                     "serve migrates it at start (back it up first if it matters)")
    return fail("database", f"{where}: schema {revision} is newer than this clawdbot's {SCHEMA_HEAD}",
                "upgrade clawdbot, or point it at another database")


async def redis_check(config: Config, env: Mapping[str, str]) -> Check:
    from clawdbot.state.redis import redis_url
    from clawdbot.state.redis_lean import LeanRedis

    url = redis_url(config, env)
    if url is None:
        return Check("redis", "skip", "not configured: limits, breakers and revocations stay in this process")
    shown = urllib.parse.urlsplit(url)
    where = f"{shown.hostname}:{shown.port or 6379}"
    client = LeanRedis.from_url(url, timeout=CHECK_TIMEOUT_S)
    try:
        answer = await asyncio.wait_for(client.execute([("PING",)]), CHECK_TIMEOUT_S)
    except Exception as exc:
        return fail("redis", f"{where}: {type(exc).__name__}: {str(exc)[:200]}",
                    "is Redis up, and the URL (and its password) right? (CLAWDBOT_REDIS_URL or redis_url)")
    finally:
        await client.close()
    pong = answer[0]
    if pong not in (b"PONG", "PONG"):
        return fail("redis", f"{where}: PING answered {pong!r}", "check the URL's password and database")
    return ok("redis", f"{where}: PING answered")


def clock_check(config: Config) -> Check:
    tz = config.routing.timezone
    try:
        zone = zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return fail("clock", f"time zone {tz!r} is not known here", "install tzdata, or fix routing.timezone")
    now = time.time()
    if now < 1_700_000_000:  # before November 2023: this clock is wrong
        return fail("clock", f"the system clock says {time.strftime('%Y-%m-%d', time.gmtime(now))}",
                    "set the clock (NTP): keys' expiry, budgets' periods and time rules read it")
    import datetime

    local = datetime.datetime.now(zone).strftime("%Y-%m-%d %H:%M %Z")
    windows = f"; time rules: {', '.join(config.routing.windows)}" if config.routing.windows else ""
    return ok("clock", f"{local} in {tz}{windows}")


def disk_check(config: Config, env: Mapping[str, str]) -> Check:
    path = data_path(config, env)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    where = f"{path}{'' if path.exists() else ' (not created yet)'}"
    if not os.access(probe, os.W_OK):
        return fail("data directory", f"{where}: not writable by this user",
                    "fix its permissions, or set CLAWDBOT_DATA_DIR")
    size = f"{free / (1 << 30):.1f} GiB free"
    if free < MIN_DISK_BYTES:
        return fail("data directory", f"{where}: {size}", "free some space: the database and journals need it")
    if free < LOW_DISK_BYTES:
        return Check("data directory", "warn", f"{where}: {size}", "free some space before it runs out")
    return ok("data directory", f"{where}: {size}")
