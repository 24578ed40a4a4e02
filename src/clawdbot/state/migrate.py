"""`python -m clawdbot.state.migrate`: brings the database named by CLAWDBOT_MIGRATE_URL to the
newest schema and exits (0 done; 1 failed, the reason on the last line of stderr). The gateway runs
it as a child process when a migration is due (state/sql.py upgrade), so Alembic never stays in the
gateway's memory. The URL comes in the environment: a password never shows in a process list."""

from __future__ import annotations

import asyncio
import os
import sys

from clawdbot.state.revision import MIGRATE_URL_ENV
from clawdbot.state.sql import create_engine, migrate_here


async def _main(url: str) -> str:
    engine = create_engine(url)
    try:
        return await migrate_here(engine)
    finally:
        await engine.dispose()


def main() -> int:
    url = os.environ.get(MIGRATE_URL_ENV)
    if not url:
        print(f"{MIGRATE_URL_ENV} is not set", file=sys.stderr)
        return 1
    try:
        asyncio.run(_main(url))
    except Exception as exc:  # the parent reports the last line; never the URL (create_engine redacts)
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
