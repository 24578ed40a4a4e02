"""Store records and request contexts as the socket's JSON shows them (camelCase, ms timestamps)."""

from __future__ import annotations

from typing import Any

from clawdbot.core.context import RequestContext
from clawdbot.state.base import MessageRecord, SessionRecord


def session_view(s: SessionRecord) -> dict[str, Any]:
    return {"id": s.id, "title": s.title, "model": s.model, "createdAt": s.created_at,
            "updatedAt": s.updated_at, "messageCount": s.message_count}


def message_view(m: MessageRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"id": m.id, "role": m.role, "content": m.content, "model": m.model,
                           "createdAt": m.created_at, "status": m.status}
    if m.usage is not None:
        out["usage"] = m.usage
    if m.trace is not None:
        out["trace"] = m.trace
    return out


def _r(v: float | None) -> float | None:
    return round(v, 1) if v is not None else None


def usage_view(ctx: RequestContext) -> dict[str, int] | None:
    if ctx.prompt_tokens is None and ctx.completion_tokens is None:
        return None
    return {"promptTokens": ctx.prompt_tokens or 0, "completionTokens": ctx.completion_tokens or 0}


def trace_view(ctx: RequestContext, outcome: str, error: dict[str, str] | None) -> dict[str, Any]:
    """What happened to one chat turn. Grows as routing and plugins land; clients show unknown keys."""
    total, ttft = ctx.elapsed_ms(), ctx.ttft_ms()
    tps = None
    if ctx.completion_tokens and ttft is not None and total - ttft > 1.0:
        tps = ctx.completion_tokens / ((total - ttft) / 1000.0)
    trace: dict[str, Any] = {
        "requestId": ctx.request_id, "service": ctx.service, "upstreamModel": ctx.upstream_model,
        "ttftMs": _r(ttft), "totalMs": _r(total), "promptTokens": ctx.prompt_tokens,
        "completionTokens": ctx.completion_tokens, "tokensPerSecond": _r(tps),
        "attempts": _attempts(ctx, outcome),
    }
    if ctx.upstream_status is not None:
        trace["upstreamStatus"] = ctx.upstream_status
    if ctx.plugin_notes:  # what each plugin did: "pii: masked 3 items", "cache: hit"
        trace["plugins"] = list(ctx.plugin_notes)
    if ctx.cost_free:
        trace["costFree"] = True
    if error is not None:
        trace["error"] = error
    return trace


def _attempts(ctx: RequestContext, outcome: str) -> list[dict[str, Any]]:
    """Every upstream attempt (failovers included) as the router recorded them; without records,
    the one that answered."""
    recorded = getattr(ctx, "attempts", None)
    if recorded:
        return [{k: v for k, v in a.items() if k != "where"} for a in recorded]  # "where": the header's form
    return [{"service": ctx.service, "ok": outcome != "error"}] if ctx.service else []
