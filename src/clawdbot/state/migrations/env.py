"""Alembic's environment. clawdbot runs it on the connection state/sql.py:upgrade already holds (in
its transaction, under its lock); a developer's autogenerate runs it on a URL in
`config.attributes["url"]`; `--sql` (offline) mode prints the DDL for a DBA.

No logging.config.fileConfig here: it would replace the application's logging."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from alembic import context

from clawdbot.state.revision import VERSION_TABLE
from clawdbot.state.tables import metadata


def configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        # SQLite alters most things only by rebuilding the table; batch mode writes migrations that do.
        render_as_batch=True,
        compare_type=True,
        **kwargs,
    )


def run_on(connection: sa.Connection) -> None:
    configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_on_url(url: str) -> None:
    from clawdbot.state.sql import BEGIN_OPTION, create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                # Reads the version, then writes: SQLite's write lock from the start, as in sql.upgrade.
                await conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
            async with conn.begin():
                await conn.run_sync(run_on)
    finally:
        await engine.dispose()


def main() -> None:
    url = context.config.attributes.get("url")
    if context.is_offline_mode():
        configure(url=url or "postgresql://", literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
    elif url:
        asyncio.run(run_on_url(url))
    else:
        raise RuntimeError("no connection or url: build the config with clawdbot.state.sql.alembic_config")


main()
