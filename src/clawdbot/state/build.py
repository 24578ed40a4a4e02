"""Choosing the database and building the stores on it from the Config."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from clawdbot.config.schema import Config
from clawdbot.state.base import ChatStore
from clawdbot.state.files import warn_if_shared
from clawdbot.state.lazy import lazy_chat_store, lazy_request_log_store, lazy_response_store
from clawdbot.state.request_log_base import RequestLogStore
from clawdbot.state.responses_base import ResponseStore

DATABASE_FILE = "clawdbot.db"


def database_url(config: Config, env: Mapping[str, str]) -> str:
    """CLAWDBOT_DATABASE_URL, else `database_url` from the config, else a SQLite file in the data
    directory (CLAWDBOT_DATA_DIR, else `data_dir`), which is created private to the user."""
    url = env.get("CLAWDBOT_DATABASE_URL") or config.database_url
    if url:
        return url
    return f"sqlite+aiosqlite:///{(data_dir(config, env) / DATABASE_FILE).as_posix()}"


def data_dir(config: Config, env: Mapping[str, str]) -> Path:
    """CLAWDBOT_DATA_DIR, else `data_dir`; created private to the user (an existing one that is
    not is warned about, not changed: it may be shared on purpose)."""
    path = Path(env.get("CLAWDBOT_DATA_DIR") or config.data_dir).expanduser().resolve()
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkdir's mode passes through the umask; the chat history inside is nobody else's business.
        os.chmod(path, 0o700)
    else:
        warn_if_shared(path)
    return path


def build_chat_store(url: str) -> ChatStore:
    """The SQL chat store, which loads the SQL layer and migrates at its first use (state/lazy.py).
    Raises ValueError for a URL that is not SQLite or PostgreSQL (the message never shows it)."""
    return lazy_chat_store(url)


def build_response_store(config: Config, env: Mapping[str, str]) -> ResponseStore:
    """Stored responses (POST /v1/responses): in the process for `memory://`, else on the SQL
    database, opened at the first stored response (the SQL layer is not loaded before)."""
    url = env.get("CLAWDBOT_DATABASE_URL") or config.database_url
    if url is not None and url.startswith("memory:"):
        from clawdbot.state.responses_memory import MemoryResponseStore

        return MemoryResponseStore()
    return lazy_response_store(database_url(config, env))


def build_request_log_store(config: Config, env: Mapping[str, str]) -> RequestLogStore:
    """The request log: in the process for `memory://` (at most request_log.max_rows records),
    else on the SQL database, opened at the first batch written or read."""
    url = env.get("CLAWDBOT_DATABASE_URL") or config.database_url
    if url is not None and url.startswith("memory:"):
        from clawdbot.state.request_log_memory import MemoryRequestLogStore

        return MemoryRequestLogStore(config.request_log.max_rows)
    s = config.request_log
    return lazy_request_log_store(database_url(config, env), s.max_rows, s.retention_hours)
