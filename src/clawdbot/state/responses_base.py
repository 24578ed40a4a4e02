"""Stored responses of OpenAI's Responses dialect (POST /v1/responses with `store`): the response
object as the client got it, this turn's input items (GET .../input_items) and the conversation a
later request continues with `previous_response_id`. Each belongs to the key that created it; no
other key sees it. Kept for a retention period, and at most a number per key (the oldest go)."""

from __future__ import annotations

from typing import Any, Protocol

import msgspec


class StoredResponse(msgspec.Struct):
    id: str
    owner: str  # the key id, or "master" / "anonymous"
    created_at: int  # ms since the epoch
    expires_at: int  # ms since the epoch
    response: dict[str, Any]  # the response object
    input_items: list[dict[str, Any]]
    conversation: list[dict[str, Any]]  # canonical messages (msgspec builtins), instructions left out


class ResponseStore(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def put(self, rec: StoredResponse, max_per_owner: int) -> None:
        """Stores `rec`; drops expired responses and the owner's oldest beyond `max_per_owner`."""
        ...

    async def get(self, owner: str, id: str, now_ms: int) -> StoredResponse | None:
        """None when there is none, it expired, or it is another owner's."""
        ...

    async def delete(self, owner: str, id: str) -> bool: ...
