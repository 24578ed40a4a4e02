"""Choosing the database and building the stores on it from the Config."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from clawdbot.config.schema import Config
from clawdbot.state.base import ChatStore
from clawdbot.state.chat_sql import SqlChatStore
from clawdbot.state.sql import Database

DATABASE_FILE = "clawdbot.db"


def database_url(config: Config, env: Mapping[str, str]) -> str:
    """CLAWDBOT_DATABASE_URL, else `database_url` from the config, else a SQLite file in the data
    directory (CLAWDBOT_DATA_DIR, else `data_dir`), which is created private to the user."""
    url = env.get("CLAWDBOT_DATABASE_URL") or config.database_url
    if url:
        return url
    data_dir = Path(env.get("CLAWDBOT_DATA_DIR") or config.data_dir).expanduser().resolve()
    if not data_dir.is_dir():
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkdir's mode passes through the umask; the chat history inside is nobody else's business.
        os.chmod(data_dir, 0o700)
    return f"sqlite+aiosqlite:///{(data_dir / DATABASE_FILE).as_posix()}"


def build_chat_store(url: str) -> ChatStore:
    """Raises ValueError for a URL that is not SQLite or PostgreSQL (the message never shows it)."""
    return SqlChatStore(Database(url))
