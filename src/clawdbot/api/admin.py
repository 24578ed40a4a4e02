"""POST /admin/reload: read the config file again and swap it in (pipeline/reload.py). Needs the
master key: an admin endpoint is never open, not even on loopback."""

from __future__ import annotations

import msgspec

from clawdbot.api.exchange import Exchange
from clawdbot.core.errors import BadRequest, Forbidden
from clawdbot.pipeline.policy import Pipeline

_encode = msgspec.json.Encoder().encode


async def reload(ex: Exchange, pl: Pipeline, body: bytes) -> None:
    if not pl.gateway.config.server.master_key:
        raise Forbidden("POST /admin/reload needs a master key: set server.master_key or CLAWDBOT_MASTER_KEY.",
                        code="master_key_required")
    ok, detail = await pl.gateway.reloader.reload(f"POST /admin/reload by {ex.ctx.principal or 'master'}")
    if not ok:
        raise BadRequest(f"The new config was rejected; the previous one keeps serving. {detail}",
                         code="config_rejected")
    assert isinstance(detail, dict)
    await ex.json(200, _encode({"status": "reloaded", **detail}))
