"""The one place errors become HTTP responses: in OpenAI's error shape, or in the shape of the dialect
the request's path speaks (Anthropic's under /v1/messages, Ollama's under /api/)."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from clawdbot.core.errors import GatewayError, MethodNotAllowed, UpstreamError

_encode = msgspec.json.Encoder().encode


ANTHROPIC_PATHS = ("/v1/messages",)
OLLAMA_PATHS = ("/api/",)


def error_body_for(path: str, exc: GatewayError, status: int) -> bytes:
    if path.startswith(ANTHROPIC_PATHS):
        from clawdbot.codecs.anthropic import encode_error

        return encode_error(exc, status)
    if path.startswith(OLLAMA_PATHS):
        return _encode({"error": exc.message})  # Ollama's shape
    return error_body(exc)


def error_body(exc: GatewayError) -> bytes:
    err: dict[str, object] = {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}
    if isinstance(exc, UpstreamError) and exc.upstream_status is not None:
        err["upstream_status"] = exc.upstream_status
    return _encode({"error": err})


def error_status(exc: GatewayError) -> int:
    # An upstream's 429 stays a 429 (with its Retry-After) so clients back off as they would
    # against the upstream itself. The caller's own mistakes (UpstreamRejected: 400, 413, 422)
    # carry the upstream's status already; any other upstream failure is a 502.
    if isinstance(exc, UpstreamError) and exc.upstream_status == 429:
        return 429
    return exc.status


def internal_error(request_id: str) -> GatewayError:
    return GatewayError(f"The gateway failed to handle this request (request id {request_id}); "
                        f"the details are in its log.", code="internal_error")


def method_not_allowed(methods: Iterable[str], path: str = "This path") -> MethodNotAllowed:
    """405 with `Allow` (RFC 9110: a 405 names the methods the path does accept)."""
    names = ", ".join(methods)
    return MethodNotAllowed(f"{path} accepts {names} only.", headers={"Allow": names})
