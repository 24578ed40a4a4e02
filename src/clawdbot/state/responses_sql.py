"""Stored responses on SQL (SQLite or PostgreSQL), table `responses` (migration 0004)."""

from __future__ import annotations

import sqlalchemy as sa

from clawdbot.state.responses_base import StoredResponse
from clawdbot.state.sql import DatabaseUser
from clawdbot.state.tables import responses

_COLUMNS = ("id", "owner", "created_at", "expires_at", "response", "input_items", "conversation")


class SqlResponseStore(DatabaseUser):
    async def put(self, rec: StoredResponse, max_per_owner: int) -> None:
        await self.start()
        async with self.database.write() as conn:
            await conn.execute(sa.delete(responses).where(responses.c.expires_at <= rec.created_at))
            await conn.execute(sa.insert(responses).values({c: getattr(rec, c) for c in _COLUMNS}))
            # the owner's newest `max_per_owner` stay; older ones go (storage a key can fill is bounded)
            keep = (sa.select(responses.c.id).where(responses.c.owner == rec.owner)
                    .order_by(responses.c.created_at.desc(), responses.c.id.desc()).limit(max_per_owner))
            await conn.execute(sa.delete(responses).where(responses.c.owner == rec.owner,
                                                          responses.c.id.not_in(keep.scalar_subquery())))

    async def get(self, owner: str, id: str, now_ms: int) -> StoredResponse | None:
        await self.start()
        query = sa.select(*(responses.c[c] for c in _COLUMNS)).where(
            responses.c.id == id, responses.c.owner == owner, responses.c.expires_at > now_ms)
        async with self.database.read() as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else StoredResponse(**{c: row[c] for c in _COLUMNS})

    async def delete(self, owner: str, id: str) -> bool:
        await self.start()
        async with self.database.write() as conn:
            result = await conn.execute(sa.delete(responses).where(responses.c.id == id, responses.c.owner == owner))
        return bool(result.rowcount)
