"""A deterministic in-process provider for demos and tests: no network, no model, same answer every
time. It is a real provider (not a patched function), so tests exercise the whole pipeline."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import AsyncGenerator

from clawdbot.config.schema import Service
from clawdbot.core.context import RequestContext
from clawdbot.core.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from clawdbot.providers.base import Probe

EMBEDDING_DIM = 8


def _words(text: str) -> list[str]:
    return text.split()


def _last_user_text(req: ChatRequest) -> str:
    for msg in reversed(req.messages):
        if msg.role == "user":
            return msg.text()
    return ""


def _prompt_words(req: ChatRequest) -> int:
    return sum(len(_words(m.text())) for m in req.messages)


def _tool_call(req: ChatRequest, text: str) -> ToolCall | None:
    """`call <toolname>` in the user's text, for a tool the request offers, becomes a tool call."""
    if not req.tools:
        return None
    for tool in req.tools:
        if re.search(rf"\bcall {re.escape(tool.name)}\b", text):
            digest = hashlib.sha256(f"{tool.name}:{text}".encode()).hexdigest()[:24]
            return ToolCall(id=f"call_{digest}", name=tool.name, arguments="{}")
    return None


def _vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    raw = [int.from_bytes(digest[i * 4 : i * 4 + 4], "big") / 2**31 - 1.0 for i in range(EMBEDDING_DIM)]
    norm = sum(x * x for x in raw) ** 0.5 or 1.0
    return [x / norm for x in raw]


class MockProvider:
    kind = "mock"

    def __init__(self, svc: Service) -> None:
        self.name = svc.name
        self.model = str(svc.metadata.get("model_id") or "mock-model")

    def _reply(self, req: ChatRequest) -> tuple[list[str], str]:
        """The reply's words, cut at max_tokens (one token per word), and the finish reason."""
        words = _words(f"mock reply to: {_last_user_text(req)}")
        if req.max_tokens is not None and len(words) > req.max_tokens:
            return words[: max(req.max_tokens, 0)], "length"
        return words, "stop"

    async def chat(self, req: ChatRequest, ctx: RequestContext) -> ChatResponse:
        ctx.upstream_model = self.model
        created = int(time.time())
        rid = f"mock-{ctx.request_id}"
        call = _tool_call(req, _last_user_text(req))
        if call is not None:
            msg = Message(role="assistant", tool_calls=[call])
            usage = Usage(prompt_tokens=_prompt_words(req), completion_tokens=1)
            return ChatResponse(rid, self.model, created, msg, "tool_calls", usage)
        words, finish = self._reply(req)
        usage = Usage(prompt_tokens=_prompt_words(req), completion_tokens=len(words))
        msg = Message(role="assistant", content=" ".join(words))
        return ChatResponse(rid, self.model, created, msg, finish, usage)

    async def stream(self, req: ChatRequest, ctx: RequestContext) -> AsyncGenerator[ChatChunk, None]:
        ctx.upstream_model = self.model
        yield ChatChunk(role="assistant", model=self.model)
        prompt = _prompt_words(req)
        call = _tool_call(req, _last_user_text(req))
        if call is not None:
            delta = ToolCallDelta(index=0, id=call.id, name=call.name, arguments=call.arguments)
            yield ChatChunk(tool_calls=[delta])
            yield ChatChunk(finish_reason="tool_calls", usage=Usage(prompt, 1))
            return
        words, finish = self._reply(req)
        for i, word in enumerate(words):
            yield ChatChunk(content=word if i == 0 else " " + word)
        yield ChatChunk(finish_reason=finish, usage=Usage(prompt, len(words)))

    async def embed(self, req: EmbeddingRequest, ctx: RequestContext) -> EmbeddingResponse:
        ctx.upstream_model = self.model
        usage = Usage(prompt_tokens=sum(len(_words(t)) for t in req.input))
        return EmbeddingResponse(self.model, [_vector(t) for t in req.input], usage)

    async def probe(self) -> Probe:
        return Probe(ok=True, latency_ms=0.0, detail="mock", models=[self.model])

    async def close(self) -> None:
        return None
