"""The typed error tree. Every failure a client can see is one of these; api/errors.py is the one
place they become HTTP responses. `retryable` is the policy the router reads (may another
deployment be tried?)."""

from __future__ import annotations


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}


class BadRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(GatewayError):
    status = 403
    type = "permission_error"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class UnsupportedMediaType(GatewayError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class NotImplementedByService(GatewayError):
    status = 501
    type = "not_implemented_error"
    code = "not_implemented"


class UpstreamError(GatewayError):
    """The upstream answered with an error, or with something that is not its wire format."""

    status = 502
    type = "upstream_error"
    code: str | None = "upstream_error"

    def __init__(self, message: str, *, upstream_status: int | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.upstream_status = upstream_status
        # 5xx and 429 from an upstream are worth another deployment; 4xx are the request's fault.
        self.retryable = upstream_status is None or upstream_status >= 500 or upstream_status == 429


class UpstreamRejected(UpstreamError):
    """The upstream refused the request itself (400, 413, 422: a prompt over the context window, a
    bad parameter): the caller's fault, not the service's. The client gets the upstream's status
    and error (message, type, param, code) as if it had called the upstream; no other deployment
    is tried, and the breaker counts it as an answer (pipeline/attempt.py:verdict)."""

    def __init__(self, message: str, *, upstream_status: int, error_type: str | None = None,
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message, upstream_status=upstream_status, param=param)
        self.status = upstream_status
        self.type = error_type or "invalid_request_error"
        self.code = code  # the upstream's, None included: not our "upstream_error"


class UpstreamUnavailable(GatewayError):
    """Could not reach the upstream (refused, reset, DNS) or no service can take the request."""

    status = 503
    type = "service_unavailable"
    code = "service_unavailable"
    retryable = True


class UpstreamTimeout(GatewayError):
    status = 504
    type = "timeout"
    code = "upstream_timeout"
    retryable = True


class CircuitOpen(UpstreamUnavailable):
    """Every deployment that could take the request is behind an open circuit breaker (or asked
    to be left alone for a while with Retry-After)."""

    code = "circuit_open"


class Overloaded(GatewayError):
    """A service's in-flight limit and its wait queue are full (or the wait timed out)."""

    status = 503
    type = "service_unavailable"
    code = "overloaded"
    retryable = True
