"""gRPC status codes to the gateway's typed errors, so retries, fallbacks and breakers treat a gRPC
service as they treat an HTTP one: UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED and the server's
own failures may be retried elsewhere, and so may FAILED_PRECONDITION and a model that is not ready
(MLServer says so with INVALID_ARGUMENT); INVALID_ARGUMENT and OUT_OF_RANGE are the caller's request
(its status and message go back to the caller); NOT_FOUND, UNIMPLEMENTED and the credential errors
are this service's problem (a 502 that names it, not retried on the same service)."""

from __future__ import annotations

import grpc

from clawdbot.core.errors import GatewayError, UpstreamError, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable

MESSAGE_LIMIT = 500  # characters of a server's message passed on

# status -> the HTTP status an HTTP upstream would have answered (what breakers, logs and the
# retry policy read as upstream_status)
_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.ABORTED: 503,
}


def status_error(service: str, code: grpc.StatusCode, details: str | None) -> GatewayError:
    text = (details or "").strip()[:MESSAGE_LIMIT] or "no details"
    name = code.name
    # FAILED_PRECONDITION: the server is not in a state to run it (a model that failed to load);
    # MLServer answers a model that is not ready yet with INVALID_ARGUMENT ("... is not ready yet.")
    not_ready = code == grpc.StatusCode.INVALID_ARGUMENT and "not ready" in text
    if code == grpc.StatusCode.FAILED_PRECONDITION or not_ready:
        return UpstreamUnavailable(f"service {service!r} cannot run the model now (gRPC {name}: {text})")
    if code == grpc.StatusCode.UNAVAILABLE:
        return UpstreamUnavailable(f"service {service!r} is unavailable (gRPC UNAVAILABLE: {text})")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return UpstreamTimeout(f"service {service!r} did not answer in time (gRPC DEADLINE_EXCEEDED: {text})")
    status = _HTTP.get(code, 502)
    if status == 400:
        return UpstreamRejected(f"service {service!r} refused the request (gRPC {name}): {text}",
                                upstream_status=400, code=name.lower())
    # 404 and 501: not this service's fault per se, but asking it again will not help (not retryable);
    # 429, 5xx: retryable (UpstreamError's own rule on upstream_status)
    return UpstreamError(f"service {service!r} answered gRPC {name}: {text}", upstream_status=status)


def rpc_error(service: str, exc: grpc.RpcError) -> GatewayError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return status_error(service, code or grpc.StatusCode.UNKNOWN, details)
