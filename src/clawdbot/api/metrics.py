"""GET /metrics: Prometheus text, or OpenMetrics when Accept asks for it (observability/exposition.py).
Protected like the admin API: with a master key set it needs the master key or an admin key."""

from __future__ import annotations

from clawdbot.api.exchange import Exchange
from clawdbot.observability.exposition import exposition
from clawdbot.pipeline.policy import Pipeline


async def metrics(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    accept = ex.ctx.headers.get(b"accept", b"") if ex.ctx.headers else b""
    data, content_type = exposition(pl.gateway.metrics, bytes(accept).decode("latin-1"))
    await ex.start(200, content_type.encode(), [(b"content-length", str(len(data)).encode())])
    await ex.end(data)
