"""Migration 0009 on a real PostgreSQL database: the spend table's owner indexes cover what an
owner's report and budget seed read, so those queries can be answered from the index alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from clawdbot.state.spend_sql import SCOPE_COLUMNS
from clawdbot.state.sql import Database
from clawdbot.state.tables import spend
from tests.state import test_chat_store as chat_tests

postgres = chat_tests.postgres

OWNERS = ("key_id", "user_id", "team_id")
INCLUDE = "INCLUDE (day, model, prompt_tokens, completion_tokens, cost)"


async def _migrated(url: str) -> None:
    database = Database(url)
    await database.acquire()
    await database.release()


async def _indexdefs(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"), timeout=5)
    try:
        rows = await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'spend'")
    finally:
        await conn.close()
    return {r["indexname"]: r["indexdef"] for r in rows}


async def _plan(url: str, scope: str) -> str:
    query = sa.select(sa.func.coalesce(sa.func.sum(spend.c.cost), 0)).where(
        SCOPE_COLUMNS[scope] == "x_1", spend.c.at >= 1)
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    conn = await asyncpg.connect(url, timeout=5)
    try:
        # An empty table is read whole whatever the indexes: ask for the index path to see its shape.
        await conn.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        return "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql))
    finally:
        await conn.close()


@pytest.fixture
def pg_url(postgres: chat_tests.PostgresServer) -> Iterator[str]:
    url = postgres.create()
    yield url
    postgres.drop(sa.make_url(url).database or "")


def test_owner_indexes_cover_the_report_columns(pg_url: str) -> None:
    asyncio.run(_migrated(pg_url))
    defs = asyncio.run(_indexdefs(pg_url))
    for owner in OWNERS:
        definition = defs[f"ix_spend_{owner}_at"]
        assert f"({owner}, at) {INCLUDE}" in definition, definition
    assert "INCLUDE" not in defs["ix_spend_at"] and "INCLUDE" not in defs["ix_spend_model_at"]


@pytest.mark.parametrize("scope", ["key", "user", "team"])
def test_a_budget_seed_reads_the_index_alone(pg_url: str, scope: str) -> None:
    asyncio.run(_migrated(pg_url))
    plan = asyncio.run(_plan(pg_url, scope))
    assert f"Index Only Scan using ix_spend_{scope}_id_at" in plan, plan
