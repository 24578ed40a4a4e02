"""Store contracts. The web gateway (and later keys, budgets, spend) depend on these Protocols, not
on a database; state/sql.py implements them on SQLAlchemy (SQLite by default, PostgreSQL with
`database_url`)."""

from __future__ import annotations

from typing import Any, Protocol

import msgspec


class SessionRecord(msgspec.Struct):
    id: str
    user: str
    title: str
    model: str | None
    created_at: int  # ms since the epoch
    updated_at: int
    message_count: int = 0


class MessageRecord(msgspec.Struct):
    id: str
    session_id: str
    role: str  # user | assistant
    content: str
    model: str | None
    status: str  # complete | aborted | error
    created_at: int
    usage: dict[str, Any] | None = None
    trace: dict[str, Any] | None = None


class ChatStore(Protocol):
    """Sessions and their messages, always scoped to a user: one user never sees another's."""

    async def start(self) -> None:
        """Connect and bring the schema up to date (migrations)."""
        ...

    async def close(self) -> None: ...

    async def create_session(self, user: str, title: str, model: str | None) -> SessionRecord: ...

    async def list_sessions(self, user: str, limit: int = 50, before: int | None = None) -> list[SessionRecord]:
        """Most recently updated first; `before` pages by updated_at."""
        ...

    async def get_session(self, user: str, session_id: str) -> SessionRecord | None: ...

    async def rename_session(self, user: str, session_id: str, title: str) -> SessionRecord | None: ...

    async def set_session_model(self, user: str, session_id: str, model: str | None) -> SessionRecord | None: ...

    async def delete_session(self, user: str, session_id: str) -> bool:
        """Deletes its messages too."""
        ...

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
        """Appends and bumps the session's updated_at and message_count; returns the message and
        the session as the append left it (a chat turn's answer and the session event after it:
        one call). Raises KeyError when the session does not exist for this user."""
        ...

    async def list_messages(self, user: str, session_id: str, limit: int | None = None,
                            before: int | None = None) -> list[MessageRecord]:
        """Oldest first. With `limit`: the newest `limit` messages created before `before` (ms), if
        given, still oldest first (pages back through a long session)."""
        ...

    async def count_sessions(self, user: str) -> int: ...

    async def delete_last_assistant(self, user: str, session_id: str) -> bool:
        """Removes the newest message if it is the assistant's (for regenerate)."""
        ...
