"""An in-process ChatStore: `database_url: memory://`. Nothing survives a restart; useful for tests,
demos and a gateway that must not write to disk. Bounded: the oldest sessions are dropped past
`max_sessions`, and a session keeps at most `max_messages` messages."""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from typing import Any

import msgspec

from clawdbot.state.base import MessageRecord, SessionRecord


def _now_ms() -> int:
    return int(time.time() * 1000)


def _new_id(prefix: str) -> str:
    return prefix + os.urandom(8).hex()


class _Session:
    __slots__ = ("messages", "record")

    def __init__(self, record: SessionRecord, max_messages: int) -> None:
        self.record = record
        self.messages: deque[MessageRecord] = deque(maxlen=max_messages)


class MemoryChatStore:
    def __init__(self, max_sessions: int = 10_000, max_messages: int = 1_000) -> None:
        self.max_sessions = max_sessions
        self.max_messages = max_messages
        self._sessions: dict[str, _Session] = {}  # insertion order: oldest first
        # updated_at has millisecond resolution: a tie-breaker keeps "most recent first" exact
        self._tick = itertools.count()
        self._order: dict[str, int] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _touch(self, sid: str) -> None:
        self._order[sid] = next(self._tick)

    def _owned(self, user: str, session_id: str) -> _Session | None:
        s = self._sessions.get(session_id)
        return s if s is not None and s.record.user == user else None

    async def create_session(self, user: str, title: str, model: str | None) -> SessionRecord:
        if len(self._sessions) >= self.max_sessions:
            oldest = min(self._order, key=self._order.__getitem__)
            del self._sessions[oldest], self._order[oldest]
        now = _now_ms()
        rec = SessionRecord(_new_id("s_"), user, title, model, now, now, 0)
        self._sessions[rec.id] = _Session(rec, self.max_messages)
        self._touch(rec.id)
        return msgspec.structs.replace(rec)

    async def list_sessions(self, user: str, limit: int = 50, before: int | None = None) -> list[SessionRecord]:
        mine = [s.record for s in self._sessions.values() if s.record.user == user]
        if before is not None:
            mine = [r for r in mine if r.updated_at < before]
        mine.sort(key=lambda r: (r.updated_at, self._order[r.id]), reverse=True)
        return [msgspec.structs.replace(r) for r in mine[:limit]]

    async def get_session(self, user: str, session_id: str) -> SessionRecord | None:
        s = self._owned(user, session_id)
        return msgspec.structs.replace(s.record) if s is not None else None

    async def rename_session(self, user: str, session_id: str, title: str) -> SessionRecord | None:
        s = self._owned(user, session_id)
        if s is None:
            return None
        s.record.title, s.record.updated_at = title, _now_ms()
        self._touch(session_id)
        return msgspec.structs.replace(s.record)

    async def set_session_model(self, user: str, session_id: str, model: str | None) -> SessionRecord | None:
        s = self._owned(user, session_id)
        if s is None:
            return None
        s.record.model = model
        return msgspec.structs.replace(s.record)

    async def delete_session(self, user: str, session_id: str) -> bool:
        if self._owned(user, session_id) is None:
            return False
        del self._sessions[session_id], self._order[session_id]
        return True

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
        s = self._owned(user, session_id)
        if s is None:
            raise KeyError(session_id)
        now = _now_ms()
        msg = MessageRecord(_new_id("m_"), session_id, role, content, model, status, now, usage, trace)
        s.messages.append(msg)
        s.record.updated_at, s.record.message_count = now, len(s.messages)
        self._touch(session_id)
        return msgspec.structs.replace(msg), msgspec.structs.replace(s.record)

    async def list_messages(self, user: str, session_id: str, limit: int | None = None,
                            before: int | None = None) -> list[MessageRecord]:
        s = self._owned(user, session_id)
        if s is None:
            return []
        found = [m for m in s.messages if before is None or m.created_at < before]
        if limit is not None:
            found = found[-limit:] if limit > 0 else []
        return [msgspec.structs.replace(m) for m in found]

    async def count_sessions(self, user: str) -> int:
        return sum(1 for s in self._sessions.values() if s.record.user == user)

    async def delete_last_assistant(self, user: str, session_id: str) -> bool:
        s = self._owned(user, session_id)
        if s is None or not s.messages or s.messages[-1].role != "assistant":
            return False
        s.messages.pop()
        s.record.message_count = len(s.messages)
        return True
