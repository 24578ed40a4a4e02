"""Bodies for the request log, for a request whose key or model has `log_bodies` on (and only then:
without it nothing here runs).

What is kept is what went upstream and what came back from it, so a plugin's masking (pii) is
already applied and its restoring of the answer is not: the request as the gateway sent it on (the
canonical request after the plugins' pre hooks, written as an OpenAI chat request: the form `clawdbot
replay` sends again), and the answer as the upstream sent it (its bytes in its own dialect when they
were passed through, an OpenAI chat response otherwise). Each is cut at `limit` bytes."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

from clawdbot.codecs import openai as oa
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, Message, Usage
from clawdbot.providers.base import RawResponse


class BodyCapture:
    __slots__ = ("_chunks", "_raw", "_whole", "limit", "request", "truncated")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.request: ChatRequest | None = None
        self.truncated = False
        self._raw: bytearray | None = None  # the upstream's bytes, passed through
        self._whole: ChatResponse | None = None
        self._chunks: list[ChatChunk] | None = None  # a canonical stream's chunks with text
        # (kept small: only content, reasoning and usage are read back)

    def sent(self, req: ChatRequest | None) -> None:
        if req is not None:
            self.request = req

    def took(self, result: Any) -> Any:
        """The answering attempt's result, wrapped where it is a stream so its bytes or chunks are
        kept as they pass. Returns what the gateway goes on with."""
        if isinstance(result, ChatResponse):
            self._whole = result
        elif isinstance(result, RawResponse):
            if result.chunks is None:
                self._bytes(result.body or b"")
            else:
                result.chunks = self._tee_bytes(result.chunks)
        elif isinstance(result, tuple) and len(result) == 2:
            head, first = result
            if isinstance(head, RawResponse) and head.chunks is not None:
                if isinstance(first, bytes | bytearray):
                    self._bytes(first)
                head.chunks = self._tee_bytes(head.chunks)
            elif isinstance(head, AsyncGenerator):
                if isinstance(first, ChatChunk):
                    self._chunk(first)
                result = (self._tee_chunks(head), first)
        return result

    def _bytes(self, data: bytes | bytearray) -> None:
        raw = self._raw
        if raw is None:
            raw = self._raw = bytearray()
        room = self.limit - len(raw)
        if len(data) > room:
            self.truncated = True
            data = data[:max(room, 0)]
        raw += data

    def _chunk(self, c: ChatChunk) -> None:
        chunks = self._chunks
        if chunks is None:
            chunks = self._chunks = []
        if len(chunks) < self.limit:  # a chunk holds at least a character: never more than the cap
            chunks.append(c)

    async def _tee_bytes(self, it: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
        try:
            async for data in it:
                if not self.truncated:
                    self._bytes(data)
                yield data
        finally:
            await it.aclose()

    async def _tee_chunks(self, it: AsyncGenerator[ChatChunk, None]) -> AsyncGenerator[ChatChunk, None]:
        try:
            async for c in it:
                self._chunk(c)
                yield c
        finally:
            await it.aclose()

    def bodies(self) -> tuple[str | None, str | None, bool]:
        """(request, answer, cut): the two bodies as text, and whether either was cut."""
        req = self.request
        request = None
        if req is not None:
            request = self._cap(oa.encode_chat_request(req, req.limit_field or "max_tokens"))
        answer = None
        if self._raw is not None:
            answer = self._raw.decode("utf-8", errors="replace")
        else:
            whole = self._whole or self._from_chunks()
            if whole is not None:
                answer = self._cap(oa.encode_chat_response(whole, req.model if req is not None else whole.model))
        return request, answer, self.truncated

    def _cap(self, data: bytes) -> str:
        if len(data) > self.limit:
            self.truncated = True
            data = data[:self.limit]
        return data.decode("utf-8", errors="replace")

    def _from_chunks(self) -> ChatResponse | None:
        chunks = self._chunks
        if chunks is None:
            return None
        text = "".join(c.content for c in chunks if c.content)
        reasoning = "".join(c.reasoning for c in chunks if c.reasoning) or None
        usage: Usage | None = None
        finish = None
        for c in chunks:
            usage = c.usage or usage
            finish = c.finish_reason or finish
        return ChatResponse(id="", model="", created=int(time.time()), finish_reason=finish, usage=usage,
                            message=Message(role="assistant", content=text, reasoning=reasoning))
