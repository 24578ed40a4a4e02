"""GET /v1/models, POST /v1/embeddings, GET /healthz, GET /readyz."""

from __future__ import annotations

import time

import msgspec

from clawdbot.api.exchange import Exchange
from clawdbot.codecs import openai as oa
from clawdbot.core.gateway import Gateway, attempts_header

_encode = msgspec.json.Encoder().encode
_STARTED = int(time.time())


async def list_models(ex: Exchange, gw: Gateway, body: bytes) -> None:
    # A virtual key limited to some models sees those only (ctx.identity: tenancy's Principal).
    allowed = getattr(ex.ctx.identity, "allowed_models", None)
    data = [
        {"id": m.id, "object": "model", "created": m.created or _STARTED, "owned_by": m.owned_by,
         **({"description": m.description} if m.description else {})}
        for m in gw.resolver.models() if allowed is None or m.id in allowed
    ]
    await ex.json(200, _encode({"object": "list", "data": data}))


async def embeddings(ex: Exchange, gw: Gateway, body: bytes) -> None:
    req = oa.parse_embedding_request(body)
    ex.ctx.model = req.model
    resp = await gw.embed(req, ex.ctx)
    if ex.ctx.service:
        ex.resp_headers.append((b"x-clawdbot-service", ex.ctx.service.encode()))
        ex.resp_headers.append((b"x-clawdbot-attempts", attempts_header(ex.ctx).encode()))
    ex.ctx.prompt_tokens = resp.usage.prompt_tokens
    await ex.json(200, oa.encode_embedding_response(resp, req.model, req.encoding_format))


async def healthz(ex: Exchange, gw: Gateway, body: bytes) -> None:
    await ex.json(200, b'{"status":"ok"}')


async def readyz(ex: Exchange, gw: Gateway, body: bytes) -> None:
    states = gw.monitor.states.values()
    if any(s.checked_at is None or time.time() - s.checked_at > 1.0 for s in states):
        await gw.monitor.probe_all()
    services = {
        s.name: {"type": s.kind, "reachable": bool(s.reachable), "latency_ms": s.latency_ms,
                 "checked_at": s.checked_at, "detail": s.detail, "breaker": s.breaker}
        for s in gw.monitor.states.values()
    }
    ready = any(v["reachable"] and v["breaker"] != "open" for v in services.values())
    await ex.json(200 if ready else 503, _encode({"status": "ready" if ready else "unavailable",
                                                   "services": services}))
