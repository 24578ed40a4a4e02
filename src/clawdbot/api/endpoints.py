"""GET /v1/models, GET /v1/models/{id}, POST /v1/embeddings, GET /healthz, GET /readyz."""

from __future__ import annotations

import time

import msgspec

from clawdbot.api.exchange import Exchange
from clawdbot.api.integral import parse_lax
from clawdbot.api.request_bounds import check_dimensions
from clawdbot.codecs import openai as oa
from clawdbot.core.errors import GatewayError, ModelNotFound
from clawdbot.core.types import ModelInfo
from clawdbot.pipeline.gateway import attempts_header
from clawdbot.pipeline.policy import Pipeline

_encode = msgspec.json.Encoder().encode
_STARTED = int(time.time())


READY_MAX_AGE = 1.0  # seconds a probe result is served by /readyz before it is refreshed


def _model(m: ModelInfo) -> dict[str, object]:
    return {"id": m.id, "object": "model", "created": m.created or _STARTED, "owned_by": m.owned_by,
            **({"description": m.description} if m.description else {})}


async def list_models(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    # A virtual key limited to some models sees those only (ctx.identity: tenancy's Principal).
    allowed = getattr(ex.ctx.identity, "allowed_models", None)
    data = [_model(m) for m in pl.gateway.resolver.models() if allowed is None or m.id in allowed]
    await ex.json(200, _encode({"object": "list", "data": data}))


async def retrieve_model(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    """One model, as in the list; a name that routes but is not listed (`service/model` on a
    service without discovery) is answered too. A model the key may not use does not exist for it."""
    path: str = ex.scope["path"]
    model_id = path.split("/models/", 1)[1]
    allowed = getattr(ex.ctx.identity, "allowed_models", None)
    missing = ModelNotFound(f"The model '{model_id}' does not exist or is not served by this gateway.",
                            param="model")
    if not model_id or (allowed is not None and model_id not in allowed):
        raise missing
    found = next((m for m in pl.gateway.resolver.models() if m.id == model_id), None)
    if found is None:
        try:
            targets = pl.gateway.resolver.resolve(model_id)
        except GatewayError:
            raise missing from None
        found = ModelInfo(model_id, targets[0].service)
    await ex.json(200, _encode(_model(found)))


async def embeddings(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    req, _ = parse_lax(oa.parse_embedding_request, body)
    check_dimensions(req.dimensions)
    ex.ctx.model = req.model
    resp = await pl.gateway.embed(req, ex.ctx)
    if ex.ctx.service:
        ex.resp_headers.append((b"x-clawdbot-service", ex.ctx.service.encode()))
        ex.resp_headers.append((b"x-clawdbot-attempts", attempts_header(ex.ctx).encode()))
    ex.ctx.prompt_tokens = resp.usage.prompt_tokens
    await ex.json(200, oa.encode_embedding_response(resp, req.model, req.encoding_format))


async def healthz(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    await ex.json(200, b'{"status":"ok"}')


async def readyz(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    """Ready when a service is reachable and its circuit not open. Probe results older than a second
    are refreshed with at most one probe in flight per service, however many ask at once. Service
    names and errors only for an authenticated caller (or when auth is off: loopback only)."""
    await pl.gateway.monitor.refresh(READY_MAX_AGE)
    services = {
        s.name: {"type": s.kind, "reachable": bool(s.reachable), "latency_ms": s.latency_ms,
                 "checked_at": s.checked_at, "detail": s.detail, "breaker": s.breaker}
        for s in pl.gateway.monitor.states.values()
    }
    ready = any(v["reachable"] and v["breaker"] != "open" for v in services.values())
    out: dict[str, object] = {"status": "ready" if ready else "unavailable"}
    if ex.ctx.principal is not None or not pl.gateway.config.server.master_key:
        out["services"] = services
    await ex.json(200 if ready else 503, _encode(out))
