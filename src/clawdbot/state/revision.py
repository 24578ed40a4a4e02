"""What a process needs to know about the schema without loading the SQL layer: the newest
revision, where Alembic records it, and the child process that migrates (`python -m
clawdbot.state.migrate`). state/sql.py migrates through these; the request log's SQLite writer
(state/request_log_sqlite.py) checks and migrates its file with them and never imports SQLAlchemy."""

from __future__ import annotations

import asyncio
import os
import sys

# Alembic's bookkeeping table, named for clawdbot so a database shared with another Alembic-managed
# application keeps both histories apart.
VERSION_TABLE = "clawdbot_alembic_version"
# The newest revision in migrations/versions/ (a test checks it against Alembic's head): a schema at
# it needs no migration, and the gateway then never imports Alembic (state/sql.py upgrade).
SCHEMA_HEAD = "0009"

MIGRATE_TIMEOUT_S = 600.0
MIGRATE_URL_ENV = "CLAWDBOT_MIGRATE_URL"  # the URL goes to the child in its environment, never in argv


class SchemaError(RuntimeError):
    """The database cannot be brought to the schema this version of clawdbot expects."""


async def migrate_in_child(url: str, shown: str) -> None:
    """Migrates the database at `url` in a child process; `shown` is the URL for the error (its
    password hidden). Raises SchemaError with the child's last line when it fails."""
    env = {**os.environ, MIGRATE_URL_ENV: url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clawdbot.state.migrate", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(MIGRATE_TIMEOUT_S):
            _, err = await proc.communicate()
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        raise SchemaError(f"migrating {shown} failed: {why}")
