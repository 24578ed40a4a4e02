"""One structured access-log line per request. Never message content, never keys."""

from __future__ import annotations

import logging

from clawdbot.core.context import RequestContext

_log = logging.getLogger("clawdbot.access")


class AccessLog:
    def __init__(self, fmt: str) -> None:
        self.json = fmt == "json"

    def emit(self, ctx: RequestContext, method: str, path: str, status: int) -> None:
        if not _log.isEnabledFor(logging.INFO):
            return
        ttft = ctx.ttft_ms()
        fields: dict[str, object] = {
            "event": "access",
            "method": method,
            "path": path,
            "status": status,
            "model": ctx.model,
            "service": ctx.service,
            "upstream_model": ctx.upstream_model,
            "stream": ctx.stream,
            "latency_ms": round(ctx.elapsed_ms(), 2),
            "ttft_ms": round(ttft, 2) if ttft is not None else None,
            "prompt_tokens": ctx.prompt_tokens,
            "completion_tokens": ctx.completion_tokens,
            "upstream_status": ctx.upstream_status,
            "error": ctx.error,
        }
        if self.json:
            _log.info("access", extra={"fields": fields, "request_id": ctx.request_id})
            return
        text = " ".join(f"{k}={_fmt(v)}" for k, v in fields.items() if k != "event" and v is not None)
        _log.info(text, extra={"request_id": ctx.request_id})


def _fmt(v: object) -> str:
    s = str(v)
    return f'"{s}"' if " " in s or not s else s
