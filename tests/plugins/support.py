"""What the plugin tests share: a real Host, contexts, and a stream driver."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from clawdbot.core.context import RequestContext
from clawdbot.core.errors import GatewayError
from clawdbot.core.types import ChatChunk
from clawdbot.plugins.base import Plugin

T = TypeVar("T")


class LocalHost:
    """The Host a plugin gets: here without Redis or models (the filter and access plugins use
    only `config_dir`)."""

    def __init__(self, config_dir: str = ".") -> None:
        self._config_dir = config_dir

    @property
    def redis_url(self) -> str | None:
        return None

    @property
    def redis_prefix(self) -> str:
        return "test:"

    @property
    def data_dir(self) -> str:
        return self._config_dir

    @property
    def config_dir(self) -> str:
        return self._config_dir

    async def embed(self, model: str, inputs: list[str], ctx: RequestContext) -> list[list[float]]:
        raise NotImplementedError("no models here")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def context(**kw: Any) -> RequestContext:
    return RequestContext(request_id="req-1", **kw)


class Streamed:
    """What a client saw of a stream run through a plugin's on_chunk / on_stream_end."""

    def __init__(self) -> None:
        self.content = ""
        self.reasoning = ""
        self.error: GatewayError | None = None
        self.chunks: list[ChatChunk] = []
        self.most_held = 0


def stream(plugin: Plugin, pieces: Sequence[str], ctx: RequestContext | None = None, *, finish: bool = True,
           held: Callable[[RequestContext], int] | None = None) -> Streamed:
    """Feeds `pieces` as content chunks (then a finish chunk when `finish`), then ends the
    stream, as the pipeline does; stops at the first GatewayError like it."""
    ctx = ctx or context()
    out = Streamed()
    chunks = [ChatChunk(content=p) for p in pieces]
    if finish:
        chunks.append(ChatChunk(finish_reason="stop"))
    try:
        for chunk in chunks:
            got = plugin.on_chunk(chunk, ctx)
            if held is not None:
                out.most_held = max(out.most_held, held(ctx))
            if got is not None:
                out.chunks.append(got)
                out.content += got.content or ""
                out.reasoning += got.reasoning or ""
        last = plugin.on_stream_end(ctx)
        if last is not None:
            out.chunks.append(last)
            out.content += last.content or ""
            out.reasoning += last.reasoning or ""
    except GatewayError as e:
        out.error = e
    return out
