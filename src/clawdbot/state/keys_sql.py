"""KeyStore on SQL (SQLite or PostgreSQL): teams, users, virtual keys and the audit log.

Each change and its audit entry are one transaction. The audit entry holds redacted copies of the
record before and after: a record never has the key or its hash, and metadata values under
secret-looking names are replaced by "***"."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from clawdbot.state.ids import MonotonicMs, new_id
from clawdbot.state.keys_base import (
    AuditFilter,
    AuditRecord,
    Conflict,
    KeyRecord,
    Kind,
    PageCursor,
    Record,
    TeamRecord,
    UserRecord,
)
from clawdbot.state.sql import Database, DatabaseUser
from clawdbot.state.tables import api_keys, audit_log, teams, users

MAX_PAGE = 500
SECRET_NAME = re.compile(r"secret|passw|token|api_?key|credential|authorization", re.IGNORECASE)
REDACTED = "***"

TABLES: dict[str, sa.Table] = {"key": api_keys, "user": users, "team": teams}
TYPES: dict[str, type[Record]] = {"key": KeyRecord, "user": UserRecord, "team": TeamRecord}
# Everything but the hash: the one column a record never carries.
KEY_COLUMNS = [c for c in api_keys.c if c.name != "key_hash"]


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_NAME.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _snapshot(record: Record | None) -> dict[str, Any] | None:
    if record is None:
        return None
    data = msgspec.structs.asdict(record)
    data["metadata"] = redact(data.get("metadata"))
    return data


def _columns(kind: Kind) -> list[sa.Column[Any]]:
    return KEY_COLUMNS if kind == "key" else list(TABLES[kind].c)


def _plain(row: sa.RowMapping) -> dict[str, Any]:
    # Column names come back as sqlalchemy's quoted_name, a str subclass msgspec will not take as a key.
    return {str(k): v for k, v in row.items()}


def _record(kind: Kind, row: sa.RowMapping) -> Record:
    return msgspec.convert(_plain(row), TYPES[kind])


class SqlKeyStore(DatabaseUser):
    """Starts itself at its first use (every method calls `start`): a process that only ever sees
    the master key never opens, nor creates, the database."""

    def __init__(self, database: Database, clock: Callable[[], int] | None = None) -> None:
        super().__init__(database)
        self._clock = clock or MonotonicMs()

    async def _audit(self, conn: AsyncConnection, actor: str, action: str, target: str | None,
                     before: Record | None, after: Record | None) -> None:
        await conn.execute(audit_log.insert().values(
            id=new_id("a"), at=self._clock(), actor=actor, action=action, target_type=action.partition(".")[0],
            target_id=target, before=_snapshot(before), after=_snapshot(after),
        ))

    async def _fetch(self, conn: AsyncConnection, kind: Kind, id: str, lock: bool = False) -> Record | None:
        table = TABLES[kind]
        query = sa.select(*_columns(kind)).where(table.c.id == id)
        row = (await conn.execute(query.with_for_update() if lock else query)).mappings().first()
        return None if row is None else _record(kind, row)

    async def create_key(self, actor: str, key: KeyRecord, key_hash: str) -> KeyRecord:
        await self.start()
        now = self._clock()
        key = msgspec.structs.replace(key, created_at=now, updated_at=now)
        try:
            async with self.database.write() as conn:
                await conn.execute(api_keys.insert().values(**msgspec.structs.asdict(key), key_hash=key_hash))
                await self._audit(conn, actor, "key.create", key.id, None, key)
        except IntegrityError:
            raise Conflict("the key already exists, or its user or team does not exist") from None
        return key

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        await self.start()
        async with self.database.read() as conn:
            query = sa.select(*KEY_COLUMNS).where(api_keys.c.key_hash == key_hash)
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else msgspec.convert(_plain(row), KeyRecord)

    async def revoke_key(self, actor: str, key_id: str) -> KeyRecord | None:
        await self.start()
        async with self.database.write() as conn:
            before = await self._fetch(conn, "key", key_id, lock=True)
            if before is None:
                return None
            assert isinstance(before, KeyRecord)
            if before.revoked_at is not None:
                return before  # revoking twice changes nothing, and the first time is in the log
            now = self._clock()
            await conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=now, updated_at=now))
            after = msgspec.structs.replace(before, revoked_at=now, updated_at=now)
            await self._audit(conn, actor, "key.revoke", key_id, before, after)
        return after

    async def get(self, kind: Kind, id: str) -> Record | None:
        await self.start()
        async with self.database.read() as conn:
            return await self._fetch(conn, kind, id)

    async def list_records(self, kind: Kind, limit: int = 100, offset: int = 0) -> list[Record]:
        return (await self.page(kind, limit, offset=offset))[0]

    async def page(self, kind: Kind, limit: int = 100, *, offset: int = 0, after: PageCursor | None = None,
                   match: str | None = None) -> tuple[list[Record], PageCursor | None]:
        await self.start()
        table = TABLES[kind]
        size = min(max(limit, 0), MAX_PAGE)
        query = sa.select(*_columns(kind))
        if after is not None:  # keyset: the rows after the cursor's in (created_at, id) descending
            created, id = after
            query = query.where(sa.or_(table.c.created_at < created,
                                       sa.and_(table.c.created_at == created, table.c.id < id)))
        if match:
            searched = [table.c.name, table.c.id] + ([api_keys.c.hint] if kind == "key" else [])
            query = query.where(sa.or_(*(c.icontains(match, autoescape=True) for c in searched)))
        # one row more than the page says whether there is a next one
        query = (query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(size + 1).offset(max(offset, 0)))
        async with self.database.read() as conn:
            records = [_record(kind, row) for row in (await conn.execute(query)).mappings()]
        if len(records) <= size or not size:
            return records[:size], None
        last = records[size - 1]
        return records[:size], (last.created_at, last.id)

    async def create(self, actor: str, record: UserRecord | TeamRecord) -> Record:
        await self.start()
        kind: Kind = "user" if isinstance(record, UserRecord) else "team"
        now = self._clock()
        record = msgspec.structs.replace(record, created_at=now, updated_at=now)
        try:
            async with self.database.write() as conn:
                await conn.execute(TABLES[kind].insert().values(**msgspec.structs.asdict(record)))
                await self._audit(conn, actor, f"{kind}.create", record.id, None, record)
        except IntegrityError:
            raise Conflict(f"a {kind} named {record.name!r} exists, or its team does not") from None
        return record

    async def update(self, actor: str, kind: Kind, id: str, changes: dict[str, Any]) -> Record | None:
        await self.start()
        table = TABLES[kind]
        try:
            async with self.database.write() as conn:
                before = await self._fetch(conn, kind, id, lock=True)
                if before is None:
                    return None
                values = {**changes, "updated_at": self._clock()}
                await conn.execute(table.update().where(table.c.id == id).values(**values))
                after = msgspec.structs.replace(before, **values)
                await self._audit(conn, actor, f"{kind}.update", id, before, after)
        except IntegrityError:
            raise Conflict(f"the {kind}'s new name is taken, or its user or team does not exist") from None
        return after

    async def delete(self, actor: str, kind: Kind, id: str) -> bool:
        await self.start()
        if kind == "key":
            raise ValueError("keys are revoked, not deleted")
        table = TABLES[kind]
        async with self.database.write() as conn:
            before = await self._fetch(conn, kind, id, lock=True)
            if before is None:
                return False
            await conn.execute(table.delete().where(table.c.id == id))
            await self._audit(conn, actor, f"{kind}.delete", id, before, None)
        return True

    async def note(self, actor: str, action: str, target: str | None, before: dict[str, Any] | None,
                   after: dict[str, Any] | None) -> None:
        await self.start()
        async with self.database.write() as conn:
            await conn.execute(audit_log.insert().values(
                id=new_id("a"), at=self._clock(), actor=actor, action=action,
                target_type=action.partition(".")[0], target_id=target, before=before, after=after))

    async def audit(self, limit: int = 100, before: int | None = None,
                    where: AuditFilter | None = None) -> list[AuditRecord]:
        await self.start()
        query = sa.select(audit_log)
        if before is not None:
            query = query.where(audit_log.c.at < before)
        if where is not None:
            query = query.where(*_audit_where(where))
        query = query.order_by(audit_log.c.at.desc(), audit_log.c.id.desc()).limit(min(max(limit, 0), MAX_PAGE))
        async with self.database.read() as conn:
            return [msgspec.convert(_plain(row), AuditRecord) for row in (await conn.execute(query)).mappings()]


def _audit_where(f: AuditFilter) -> list[sa.ColumnElement[bool]]:
    c = audit_log.c
    out: list[sa.ColumnElement[bool]] = []
    if f.actor is not None:
        out.append(c.actor == f.actor)
    if f.action is not None and f.action.endswith(".*"):
        out.append(c.action.startswith(f.action[:-1], autoescape=True))
    elif f.action is not None:
        out.append(c.action == f.action)
    if f.target_type is not None:
        out.append(c.target_type == f.target_type)
    if f.target_id is not None:
        out.append(c.target_id == f.target_id)
    if f.since is not None:
        out.append(c.at >= f.since)
    return out
