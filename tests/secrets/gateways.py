"""What the harness (tests/e2e/harness.py) hands the collector about each gateway process: the secrets
it was started with (its environment and config file), its log, a scrape of /metrics before it
stops, and what it left in its state stores (SQLite files in its data directory, a PostgreSQL
database) once it has stopped. Only public surfaces are read: no code path of the gateway exists
for this."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import re
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import yaml

from tests.secrets.collect import Collector, active

# environment variable names whose values are secrets: a segment that names one
_ENV_SEGMENTS = frozenset({"KEY", "APIKEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "CREDENTIALS"})
# config fields whose values are secrets (as the project's own masking decides, but written apart
# from it so that a gap there is not a gap here)
_FIELD = re.compile(r"(^|[_-])(key|api[_-]?key|secret|token|password|passwd|credentials?|authorization|cookie)$",
                    re.IGNORECASE)
_NOT_FIELD = frozenset({"key_id", "key_ids", "keys", "key_labels", "max_key_series", "key_cache_ttl"})
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_LINE = re.compile(r"^\s*-?\s*([\w-]+)\s*:\s*[\"']?([^\"'#\s]+)")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_TEXT_BYTES = 32 * 1024 * 1024  # data-directory files bigger than this are not read (none is, today)


class Gateway(Protocol):
    """What the collector reads of a tests/e2e/harness.py GatewayProcess."""

    args: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    cwd: Path | None


class _Run:
    def __init__(self, test: str) -> None:
        self.test = test
        self.runs = 0
        self.ports: list[int] = []  # registered with the collector while the process runs
        self.log_pending = False  # the current run's log is not collected yet


_runs: weakref.WeakKeyDictionary[Any, _Run] = weakref.WeakKeyDictionary()
_quiet = threading.local()  # set while the collector itself talks to a gateway: the taps skip it


def quiet() -> bool:
    return bool(getattr(_quiet, "on", False))


@contextlib.contextmanager
def _not_recorded() -> Iterator[None]:
    _quiet.on = True
    try:
        yield
    finally:
        _quiet.on = False


def _describe(gw: Gateway) -> str:
    return f"gateway `clawdbot {' '.join(gw.args)}`"


def _arg(args: list[str], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _config_path(gw: Gateway) -> Path | None:
    value = _arg(gw.args, "--config")
    if value is None:
        return None
    path = Path(value)
    return path if path.is_absolute() or gw.cwd is None else gw.cwd / path


def config_data(gw: Gateway) -> dict[str, Any]:
    path = _config_path(gw)
    if path is None or not path.is_file():
        return {}
    text = _REF.sub(lambda m: gw.env.get(m.group(1), m.group(2) or ""), path.read_text(errors="replace"))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:  # a config a test makes invalid on purpose: read it line by line
        return {"lines": [{m.group(1): m.group(2)} for m in map(_LINE.match, text.splitlines()) if m]}
    return data if isinstance(data, dict) else {}


def _kind(path: str) -> str:
    if path.endswith("master_key"):
        return "master key"
    if path.endswith("key_secret"):
        return "key secret"
    if "services" in path or "auth" in path:
        return "upstream key"
    return "secret"


def _walk(data: Any, path: str, found: dict[str, str]) -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            name = str(k)
            here = f"{path}.{name}" if path else name
            if isinstance(v, str) and name not in _NOT_FIELD and _FIELD.search(name):
                found[v.removeprefix("Bearer ").removeprefix("bearer ")] = _kind(here)
            _walk(v, here, found)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _walk(v, f"{path}[{i}]", found)
    elif isinstance(data, str) and "://" in data:
        _url_password(data, found)


def _url_password(url: str, found: dict[str, str]) -> None:
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        found[unquote(password)] = "password"


def harvest_env(env: dict[str, str], origin: str, into: Collector) -> None:
    for name, value in env.items():
        if _ENV_SEGMENTS & set(name.upper().split("_")):
            kind = "master key" if name.endswith("MASTER_KEY") else "key secret" if name.endswith("KEY_SECRET") \
                else "secret"
            into.add_secret(value, kind, f"{origin}: env {name}")
        elif "://" in value:
            found: dict[str, str] = {}
            _url_password(value, found)
            for v, kind in found.items():
                into.add_secret(v, kind, f"{origin}: env {name}")


def harvest(gw: Gateway, into: Collector) -> None:
    origin = _describe(gw)
    harvest_env(gw.env, origin, into)
    found: dict[str, str] = {}
    _walk(config_data(gw), "", found)
    for value, kind in found.items():
        into.add_secret(value, kind, f"{origin}: config {_config_path(gw)}")


def master_key(gw: Gateway) -> str | None:
    server = config_data(gw).get("server")
    from_file = server.get("master_key") if isinstance(server, dict) else None
    return gw.env.get("CLAWDBOT_MASTER_KEY") or (from_file if isinstance(from_file, str) else None)


# --- the harness's hooks ---------------------------------------------------------------------------

def started(gw: Gateway) -> None:
    """Before the process starts (and before a restart truncates its log file)."""
    c = active()
    run = _runs.setdefault(gw, _Run(c.test))
    _collect_log(gw, c, run)  # restarted without a stop(): the last run's log
    c.gateway_closed(run.ports)
    run.runs += 1
    harvest(gw, c)
    metrics = _arg(gw.args, "--metrics-port") or gw.env.get("CLAWDBOT_METRICS_PORT")
    run.ports = [gw.port, *([int(metrics)] if metrics and metrics.isdigit() else [])]
    run.log_pending = True
    c.gateway_listening(run.ports)


def _collect_log(gw: Gateway, c: Collector, run: _Run) -> None:
    if run.log_pending and gw.log_path.exists():
        c.add_file("gateway logs", f"log of {_describe(gw)} (run {run.runs})", gw.log_path, test=run.test)
    run.log_pending = False


def stopping(gw: Gateway) -> None:
    """While the process still runs, just before it is told to stop: /metrics as a scraper sees it."""
    c = active()
    if c.is_gateway("127.0.0.1", gw.port):
        key = master_key(gw)
        status, body = _get(gw.port, "/metrics", key)
        run = _runs.get(gw)
        c.add_text("metrics scrapes", f"GET /metrics of {_describe(gw)}: {status}", body,
                   test=run.test if run else None)


def stopped(gw: Gateway) -> None:
    """After the process has ended: its log and its state stores (once per run)."""
    c = active()
    run = _runs.get(gw)
    if run is None or not run.log_pending:
        return
    c.gateway_closed(run.ports)
    run.ports = []
    _collect_log(gw, c, run)
    harvest(gw, c)  # a test may have rewritten the config (a reload) while it ran
    _state(gw, c, run.test)


def _get(port: int, path: str, key: str | None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        with _not_recorded():
            conn.request("GET", path, headers={"Authorization": f"Bearer {key}"} if key else {})
            r = conn.getresponse()
            return r.status, r.read().decode("utf-8", "replace")
    except OSError as exc:
        return 0, f"(not scraped: {exc})"
    finally:
        conn.close()


# --- state stores ----------------------------------------------------------------------------------

def _state(gw: Gateway, c: Collector, test: str) -> None:
    data = config_data(gw)
    dirs = {gw.env.get("CLAWDBOT_DATA_DIR"), data.get("data_dir") if isinstance(data.get("data_dir"), str) else None}
    urls = {gw.env.get("CLAWDBOT_DATABASE_URL"), data.get("database_url")}
    skip = {p.resolve() for p in (gw.log_path, _config_path(gw)) if p is not None}
    files: set[Path] = set()
    for d in filter(None, dirs):
        root = Path(str(d)).expanduser()
        if root.is_dir() and root != Path.home() / ".clawdbot":
            files |= {p.resolve() for p in root.rglob("*") if p.is_file()}
    for url in urls:
        if isinstance(url, str) and url.startswith("sqlite"):
            path = Path(url.split(":///", 1)[-1].split("?", 1)[0])
            if path.is_file():
                files.add(path.resolve())
        elif isinstance(url, str) and url.startswith("postgres"):
            c.add_text("state stores", f"PostgreSQL {_no_password(url)} after {_describe(gw)}",
                       _postgres_dump(url), test=test)
    for path in sorted(files - skip):
        if path.suffix in (".yaml", ".yml") or path.name.startswith(".env") or path.stat().st_size > _TEXT_BYTES:
            continue
        with path.open("rb") as f:
            is_sqlite = f.read(16) == _SQLITE_MAGIC
        if is_sqlite:
            c.add_text("state stores", f"SQLite {path} (every table) after {_describe(gw)}", _sqlite_dump(path),
                       test=test)
        # raw bytes too: a SQLite file keeps deleted rows in free pages; a journal is plain text
        c.add_file("state stores", f"file {path} after {_describe(gw)}", path, binary=True, test=test)


def _sqlite_dump(path: Path) -> str:
    lines: list[str] = []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return f"(not read: {exc})"
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for t in tables:
            for row in db.execute(f'SELECT * FROM "{t}"'):
                lines.append(f"{t}: {row!r}")
    except sqlite3.Error as exc:
        lines.append(f"(not read further: {exc})")
    finally:
        db.close()
    return "\n".join(lines)


def _no_password(url: str) -> str:
    return re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", url)


def _postgres_dump(url: str) -> str:
    """Every table of the database's public schema, one row a line (in a thread of its own: the test
    calling stop() may be inside an event loop)."""
    out: list[str] = []

    async def dump() -> None:
        import asyncpg

        dsn = re.sub(r"^postgresql\+\w+://", "postgresql://", url)
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            for t in tables:
                for row in await conn.fetch(f'SELECT * FROM "{t["tablename"]}"'):
                    out.append(f"{t['tablename']}: {tuple(row.values())!r}")
        finally:
            await conn.close()

    def run() -> None:
        try:
            asyncio.run(dump())
        except Exception as exc:  # the database may be gone with its test (a server the test stopped)
            out.append(f"(not read: {type(exc).__name__}: {exc})")

    t = threading.Thread(target=run, name="secrets-pg-dump")
    t.start()
    t.join(30)
    return "\n".join(out)
