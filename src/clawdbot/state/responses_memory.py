"""Stored responses in the process (`database_url: memory://`): gone at restart, bounded per owner."""

from __future__ import annotations

from clawdbot.state.responses_base import StoredResponse


class MemoryResponseStore:
    def __init__(self) -> None:
        self._items: dict[str, StoredResponse] = {}  # insertion order: oldest first

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._items.clear()

    async def put(self, rec: StoredResponse, max_per_owner: int) -> None:
        now = rec.created_at
        for old in [k for k, v in self._items.items() if v.expires_at <= now]:
            del self._items[old]
        self._items[rec.id] = rec
        mine = [k for k, v in self._items.items() if v.owner == rec.owner]
        for old in mine[:max(len(mine) - max_per_owner, 0)]:
            del self._items[old]

    async def get(self, owner: str, id: str, now_ms: int) -> StoredResponse | None:
        rec = self._items.get(id)
        if rec is None or rec.owner != owner or rec.expires_at <= now_ms:
            return None
        return rec

    async def delete(self, owner: str, id: str) -> bool:
        rec = self._items.get(id)
        if rec is None or rec.owner != owner:
            return False
        del self._items[id]
        return True
