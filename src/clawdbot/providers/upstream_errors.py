"""What an upstream's error response says, and the typed error it becomes. Bodies come in OpenAI's
shape (`{"error": {"message", "type", "param", "code"}}`, also llama.cpp's and vLLM's server),
Ollama's (`{"error": "..."}`) or as plain text."""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from clawdbot.core.errors import UpstreamError, UpstreamRejected

# The upstream refused the request as invalid: the caller's fault, so the caller gets that status
# and error. 401/403 (the gateway's credentials), 404 (a model missing upstream) and 5xx stay 502.
CALLER_FAULT = frozenset({400, 413, 422})
MESSAGE_LIMIT = 1000  # characters of an upstream's message passed on to the client


class ErrorInfo(NamedTuple):
    message: str
    type: str | None = None
    param: str | None = None
    code: str | None = None


class _Detail(msgspec.Struct):
    message: str | None = None
    type: str | None = None
    param: str | None = None
    code: str | int | None = None  # some servers send a number


class _Invalid(msgspec.Struct):
    loc: list[str | int] = []
    msg: str = ""


class _Body(msgspec.Struct):
    error: _Detail | str | None = None
    message: str | None = None  # {"message": "..."}, as some proxies answer
    # FastAPI's {"detail": "..."}, or its 422 list (whose `input` echoes the request: left out)
    detail: str | list[_Invalid] | None = None


_decode = msgspec.json.Decoder(_Body).decode


def parse_error_body(body: bytes, limit: int = MESSAGE_LIMIT) -> ErrorInfo:
    """The upstream's message (empty for an empty body) and, in OpenAI's shape, type, param, code."""
    try:
        data = _decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return ErrorInfo(body[:limit].decode("utf-8", "replace").strip())
    err = data.error
    if isinstance(err, _Detail):
        code = str(err.code) if err.code is not None else None
        return ErrorInfo((err.message or "").strip()[:limit], err.type, err.param, code)
    detail = data.detail
    if isinstance(detail, list):
        detail = "; ".join(f"{'.'.join(str(p) for p in d.loc)}: {d.msg}" for d in detail) or None
    text = err if isinstance(err, str) else data.message or detail
    if text is None:
        return ErrorInfo(body[:limit].decode("utf-8", "replace").strip())
    return ErrorInfo(text.strip()[:limit])


def status_error(service: str, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
    """The typed error for an upstream's error status: the caller's fault comes back as the
    upstream said it (UpstreamRejected), everything else as a 502 (or 429) naming the service.
    A 4xx without a word is not taken for the caller's: servers explain what is wrong with a
    request, while a refusal of something the gateway added (llama.cpp's empty 400 for a request id
    that is not a UUID) comes bare."""
    info = parse_error_body(body)
    if status in CALLER_FAULT and info.message:
        return UpstreamRejected(info.message, upstream_status=status, error_type=info.type, param=info.param,
                                code=info.code)
    reason = info.message[:200] or "empty body"
    return UpstreamError(f"service {service!r} answered {status}: {reason}", upstream_status=status,
                         headers=headers)
