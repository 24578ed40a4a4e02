"""One structured access-log line per request. Never message content, never keys.

The line is built here and handed straight to the log handler's buffer: a LogRecord, a filter and
a formatter per request cost more than the line itself."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import msgspec

from clawdbot.core.context import RequestContext
from clawdbot.observability.logging import timestamp

_log = logging.getLogger("clawdbot.access")
_encode = msgspec.json.Encoder().encode
FORMATTED_CACHE = 1024  # distinct strings kept formatted per access log


class AccessLog:
    def __init__(self, fmt: str, sink: Callable[[str], None] | None = None) -> None:
        self.json = fmt == "json"
        self.sink = sink  # None: go through the logging module (embedders, tests)
        # text values already formatted: paths, model and service names repeat from line to line
        self._formatted: dict[str, str] = {}

    def emit(self, ctx: RequestContext, method: str, path: str, status: int) -> None:
        if not _log.isEnabledFor(logging.INFO):
            return
        ttft = ctx.ttft_ms()
        latency = round(ctx.elapsed_ms(), 2)
        ttft = round(ttft, 2) if ttft is not None else None
        # the X-Request-ID the upstream saw, when the client's own id could not be sent (not a UUID)
        upstream_id = ctx.upstream_request_id if ctx.upstream_request_id != ctx.request_id else None
        now = time.time()
        if self.json:
            fields: dict[str, object] = {
                "ts": round(now, 3), "level": "info", "logger": "clawdbot.access", "request_id": ctx.request_id,
                "event": "access", "method": method, "path": path, "status": status, "model": ctx.model,
                "service": ctx.service, "upstream_model": ctx.upstream_model, "stream": ctx.stream,
                "latency_ms": latency, "ttft_ms": ttft, "prompt_tokens": ctx.prompt_tokens,
                "completion_tokens": ctx.completion_tokens, "upstream_status": ctx.upstream_status,
                "error": ctx.error,
                # the gateway counted the tokens itself: the upstream sent no usage (docs/limits.md)
                "tokens_estimated": True if ctx.tokens_estimated else None,
                "upstream_request_id": upstream_id,
            }
            if ctx.pool_wait_ms:  # waited for an upstream connection: rare, and said only then
                fields["pool_wait_ms"] = round(ctx.pool_wait_ms, 2)
            if ctx.queue_wait_ms:  # waited in a full service's queue: likewise
                fields["queue_wait_ms"] = round(ctx.queue_wait_ms, 2)
            if ctx.plugin_notes:  # what plugins did ("pii: masked 2 items", "cache: hit")
                fields["plugins"] = "; ".join(ctx.plugin_notes)
            if ctx.cost_free:
                fields["cost_free"] = True
            line = _encode(fields).decode()
        else:
            line = f"{timestamp(now)} INFO  clawdbot.access request_id={ctx.request_id} " + \
                self._text(ctx, method, path, status, latency, ttft, upstream_id)
        if self.sink is not None:
            self.sink(line)
        else:
            _log.info("%s", line)

    def _text(self, ctx: RequestContext, method: str, path: str, status: int, latency: float,
              ttft: float | None, upstream_id: str | None) -> str:
        """`key=value` fields, in the JSON form's order, those without a value left out. Values a
        client chooses go through `_fmt`; numbers, the method (a token the HTTP parser checked) and
        request ids (checked on the way in) are written as they are."""
        fmt = self._fmt
        parts = [f"method={method} path={fmt(path)} status={status}"]
        if ctx.model is not None:
            parts.append(f"model={fmt(ctx.model)}")
        if ctx.service is not None:
            parts.append(f"service={fmt(ctx.service)}")
        if ctx.upstream_model is not None:
            parts.append(f"upstream_model={fmt(ctx.upstream_model)}")
        parts.append(f"stream={ctx.stream} latency_ms={latency}")
        if ttft is not None:
            parts.append(f"ttft_ms={ttft}")
        for key, value in (("prompt_tokens", ctx.prompt_tokens), ("completion_tokens", ctx.completion_tokens),
                           ("upstream_status", ctx.upstream_status)):
            if value is not None:
                parts.append(f"{key}={value}")
        if ctx.error is not None:
            parts.append(f"error={_fmt(ctx.error)}")
        if ctx.tokens_estimated:
            parts.append("tokens_estimated=True")
        if upstream_id is not None:
            parts.append(f"upstream_request_id={upstream_id}")
        if ctx.pool_wait_ms:
            parts.append(f"pool_wait_ms={round(ctx.pool_wait_ms, 2)}")
        if ctx.queue_wait_ms:
            parts.append(f"queue_wait_ms={round(ctx.queue_wait_ms, 2)}")
        if ctx.plugin_notes:
            parts.append(f"plugins={_fmt('; '.join(ctx.plugin_notes))}")
        if ctx.cost_free:
            parts.append("cost_free=True")
        return " ".join(parts)

    def _fmt(self, v: str) -> str:
        done = self._formatted.get(v)
        if done is None:
            done = _fmt(v)
            if len(v) <= 128 and len(self._formatted) < FORMATTED_CACHE:
                self._formatted[v] = done
        return done


def _fmt(v: object) -> str:
    """A field value for a text line that cannot end the line or fake another field: a client's
    path, model name or error text with a space, quote, backslash, newline or NUL is written as a
    JSON string. (str methods, not a regex: this runs for every field of every request.)"""
    if v is True or v is False or isinstance(v, int | float):
        return str(v)
    s = str(v)
    if s and s.isprintable() and " " not in s and '"' not in s and "\\" not in s:
        return s
    return _encode(s).decode()
