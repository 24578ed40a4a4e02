"""ChatStore on SQL (SQLite or PostgreSQL) with SQLAlchemy Core, async.

Every statement names the user, so one user's session id is worth nothing to another. A session's
updated_at only moves forward and each message takes the session's new updated_at as its
created_at, so within a session message times are unique and give the insertion order, even when
two processes with different clocks write to the same session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import sqlalchemy as sa

from clawdbot.state.base import MessageRecord, SessionRecord
from clawdbot.state.ids import MonotonicMs, new_id
from clawdbot.state.sql import Database
from clawdbot.state.tables import chat_messages, chat_sessions

ROLES = frozenset({"user", "assistant"})
STATUSES = frozenset({"complete", "aborted", "error"})
MAX_PAGE = 500  # sessions per list_sessions call, whatever the caller asks

S = chat_sessions
M = chat_messages
SESSION_COLUMNS = (S.c.id, S.c.user_id, S.c.title, S.c.model, S.c.created_at, S.c.updated_at, S.c.message_count)


def _session(row: sa.RowMapping) -> SessionRecord:
    return SessionRecord(
        id=row["id"],
        user=row["user_id"],
        title=row["title"],
        model=row["model"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        message_count=row["message_count"],
    )


def _message(row: sa.RowMapping) -> MessageRecord:
    return MessageRecord(
        id=row["id"],
        session_id=row["session_id"],
        role=row["role"],
        content=row["content"],
        model=row["model"],
        status=row["status"],
        created_at=row["created_at"],
        usage=row["usage"],
        trace=row["trace"],
    )


def _owned(user: str, session_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(S.c.id == session_id, S.c.user_id == user)


class SqlChatStore:
    def __init__(self, database: Database, clock: Callable[[], int] | None = None) -> None:
        self.database = database
        self._clock = clock or MonotonicMs()
        self._started = False

    async def start(self) -> None:
        if self._started:
            return
        # Marked first: a second, concurrent start() must not take a second share of the database.
        self._started = True
        try:
            await self.database.acquire()
        except BaseException:
            self._started = False
            raise

    async def close(self) -> None:
        if self._started:
            self._started = False
            await self.database.release()

    def _bump(self) -> sa.ColumnElement[int]:
        """A session's next updated_at: now, or just after its last change when that is not earlier
        (the same millisecond, or another process whose clock is ahead)."""
        now = sa.literal(self._clock(), sa.BigInteger)
        return sa.case((S.c.updated_at >= now, S.c.updated_at + 1), else_=now)

    async def create_session(self, user: str, title: str, model: str | None) -> SessionRecord:
        now = self._clock()
        record = SessionRecord(id=new_id("s"), user=user, title=title, model=model, created_at=now, updated_at=now)
        async with self.database.write() as conn:
            await conn.execute(
                S.insert().values(
                    id=record.id,
                    user_id=user,
                    title=title,
                    model=model,
                    created_at=now,
                    updated_at=now,
                    message_count=0,
                )
            )
        return record

    async def list_sessions(self, user: str, limit: int = 50, before: int | None = None) -> list[SessionRecord]:
        limit = min(max(limit, 0), MAX_PAGE)
        query = sa.select(*SESSION_COLUMNS).where(S.c.user_id == user)
        if before is not None:
            query = query.where(S.c.updated_at < before)
        query = query.order_by(S.c.updated_at.desc(), S.c.id.desc()).limit(limit)
        async with self.database.read() as conn:
            return [_session(row) for row in (await conn.execute(query)).mappings()]

    async def get_session(self, user: str, session_id: str) -> SessionRecord | None:
        async with self.database.read() as conn:
            row = (await conn.execute(sa.select(*SESSION_COLUMNS).where(_owned(user, session_id)))).mappings().first()
        return None if row is None else _session(row)

    # As in the memory store: renaming is the user's activity and moves the session up the list;
    # the model switch a chat turn makes on its way, and removing an answer to regenerate it, do not.
    async def rename_session(self, user: str, session_id: str, title: str) -> SessionRecord | None:
        return await self._update_session(user, session_id, title=title, updated_at=self._bump())

    async def set_session_model(self, user: str, session_id: str, model: str | None) -> SessionRecord | None:
        return await self._update_session(user, session_id, model=model)

    async def _update_session(self, user: str, session_id: str, **values: Any) -> SessionRecord | None:
        update = S.update().where(_owned(user, session_id)).values(**values)
        async with self.database.write() as conn:
            row = (await conn.execute(update.returning(*SESSION_COLUMNS))).mappings().first()
        return None if row is None else _session(row)

    async def delete_session(self, user: str, session_id: str) -> bool:
        # The messages go by the foreign key's ON DELETE CASCADE, in the same statement.
        async with self.database.write() as conn:
            result = await conn.execute(S.delete().where(_owned(user, session_id)))
        return result.rowcount > 0

    async def add_message(
        self,
        user: str,
        session_id: str,
        role: str,
        content: str,
        model: str | None,
        status: str = "complete",
        usage: dict[str, Any] | None = None,
        trace: dict[str, Any] | None = None,
    ) -> tuple[MessageRecord, SessionRecord]:
        if role not in ROLES:
            raise ValueError(f"role must be one of {sorted(ROLES)}, not {role!r}")
        if status not in STATUSES:
            raise ValueError(f"status must be one of {sorted(STATUSES)}, not {status!r}")
        bump = (
            S.update()
            .where(_owned(user, session_id))
            .values(updated_at=self._bump(), message_count=S.c.message_count + 1)
            .returning(*SESSION_COLUMNS)
        )
        async with self.database.write() as conn:
            # The update first: it locks the session row (PostgreSQL), so concurrent appends queue
            # and each gets a later time.
            row = (await conn.execute(bump)).mappings().one_or_none()
            if row is None:
                raise KeyError(session_id)
            session = _session(row)
            created_at = session.updated_at
            record = MessageRecord(
                id=new_id("m"),
                session_id=session_id,
                role=role,
                content=content,
                model=model,
                status=status,
                created_at=created_at,
                usage=usage,
                trace=trace,
            )
            # The record's fields are the table's columns.
            await conn.execute(M.insert().values(msgspec.structs.asdict(record)))
        return record, session

    async def list_messages(self, user: str, session_id: str, limit: int | None = None,
                            before: int | None = None) -> list[MessageRecord]:
        query = sa.select(M).join(S, S.c.id == M.c.session_id).where(_owned(user, session_id))
        if before is not None:
            query = query.where(M.c.created_at < before)
        if limit is None:
            query = query.order_by(M.c.created_at)
        else:
            query = query.order_by(M.c.created_at.desc()).limit(max(limit, 0))
        async with self.database.read() as conn:
            rows = [_message(row) for row in (await conn.execute(query)).mappings()]
        return rows if limit is None else rows[::-1]

    async def count_sessions(self, user: str) -> int:
        query = sa.select(sa.func.count()).select_from(S).where(S.c.user_id == user)
        async with self.database.read() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def delete_last_assistant(self, user: str, session_id: str) -> bool:
        newest = (
            sa.select(M.c.id, M.c.role).where(M.c.session_id == session_id).order_by(M.c.created_at.desc()).limit(1)
        )
        async with self.database.write() as conn:
            # Lock the session first (PostgreSQL; SQLite's write transaction already excludes other
            # writers), so an append cannot slip in between finding the newest message and deleting it.
            owned = await conn.execute(sa.select(S.c.id).where(_owned(user, session_id)).with_for_update())
            if owned.first() is None:
                return False
            last = (await conn.execute(newest)).first()
            if last is None or last.role != "assistant":
                return False
            await conn.execute(M.delete().where(M.c.id == last.id))
            await conn.execute(S.update().where(S.c.id == session_id).values(message_count=S.c.message_count - 1))
        return True
