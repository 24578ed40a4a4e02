"""One structured access-log line per request. Never message content, never keys.

The line is built here and handed straight to the log handler's buffer: a LogRecord, a filter and
a formatter per request cost more than the line itself."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

import msgspec

from clawdbot.core.context import RequestContext
from clawdbot.observability.logging import timestamp

_log = logging.getLogger("clawdbot.access")
_encode = msgspec.json.Encoder().encode


class AccessLog:
    def __init__(self, fmt: str, sink: Callable[[str], None] | None = None) -> None:
        self.json = fmt == "json"
        self.sink = sink  # None: go through the logging module (embedders, tests)

    def emit(self, ctx: RequestContext, method: str, path: str, status: int) -> None:
        if not _log.isEnabledFor(logging.INFO):
            return
        ttft = ctx.ttft_ms()
        fields: dict[str, object] = {
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
            # the gateway counted the tokens itself: the upstream sent no usage (docs/limits.md)
            "tokens_estimated": True if ctx.tokens_estimated else None,
            # the X-Request-ID the upstream saw, when the client's own id could not be sent (not a UUID)
            "upstream_request_id": ctx.upstream_request_id if ctx.upstream_request_id != ctx.request_id else None,
        }
        if ctx.pool_wait_ms:  # waited for an upstream connection: rare, and said only then
            fields["pool_wait_ms"] = round(ctx.pool_wait_ms, 2)
        now = time.time()
        if self.json:
            head = {"ts": round(now, 3), "level": "info", "logger": "clawdbot.access",
                    "request_id": ctx.request_id, "event": "access"}
            line = _encode({**head, **fields}).decode()
        else:
            text = " ".join(f"{k}={_fmt(v)}" for k, v in fields.items() if v is not None)
            line = f"{timestamp(now)} INFO  clawdbot.access request_id={ctx.request_id} {text}"
        if self.sink is not None:
            self.sink(line)
        else:
            _log.info("%s", line)


# Printed bare in a text line; anything else (spaces, quotes, newlines, NUL, escapes) is quoted.
_BARE = re.compile(r"[A-Za-z0-9._:/@+=,;~%#&*()\[\]-]+")


def _fmt(v: object) -> str:
    """A field value for a text line that cannot end the line or fake another field: a client's
    path, model name or error text with a newline or NUL is written as a JSON string."""
    if v is True or v is False or isinstance(v, int | float):
        return str(v)
    s = str(v)
    return s if _BARE.fullmatch(s) else _encode(s).decode()
