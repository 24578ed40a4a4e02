"""providers/upstream_errors.py: what an upstream's error body says, in every shape servers use."""

from __future__ import annotations

from pathlib import Path

import pytest

from clawdbot.api.errors import error_body, error_status
from clawdbot.core.errors import UpstreamError, UpstreamRejected
from clawdbot.pipeline.attempt import verdict
from clawdbot.providers.upstream_errors import ErrorInfo, parse_error_body, status_error

LLAMACPP = Path(__file__).resolve().parents[1] / "fixtures" / "llamacpp"


@pytest.mark.parametrize(("body", "info"), [
    ((LLAMACPP / "error_context_length.json").read_bytes(), ErrorInfo(
        "This model's maximum context length is 512 tokens. However, you requested 715 tokens (710 in the "
        "messages, 5 in the completion). Please reduce the length of the messages or completion.",
        "invalid_request_error", "messages", "context_length_exceeded")),
    (b'{"error": {"message": "bad", "type": "invalid_request_error", "param": null, "code": 400}}',
     ErrorInfo("bad", "invalid_request_error", None, "400")),
    (b'{"error":"model \\"x\\" not found, try pulling it first"}',  # Ollama's shape
     ErrorInfo('model "x" not found, try pulling it first')),
    (b'{"detail":"Not Found"}', ErrorInfo("Not Found")),
    (b'{"detail":[{"type":"list_type","loc":["body","messages"],"msg":"Input should be a valid list",'
     b'"input":"my secret prompt"}]}', ErrorInfo("body.messages: Input should be a valid list")),
    (b"upstream connect error\n", ErrorInfo("upstream connect error")),
    (b"", ErrorInfo("")),
    (b'{"unrelated": 1}', ErrorInfo('{"unrelated": 1}')),
])
def test_error_bodies_in_every_shape(body: bytes, info: ErrorInfo) -> None:
    assert parse_error_body(body) == info


def test_the_callers_mistake_keeps_the_upstreams_status_and_words() -> None:
    exc = status_error("llama", 400, (LLAMACPP / "error_context_length.json").read_bytes(), {})
    assert isinstance(exc, UpstreamRejected) and not exc.retryable and verdict(exc) is True
    assert error_status(exc) == 400
    assert error_body(exc).startswith(b'{"error":{"message":"This model\'s maximum context length is 512 tokens.')
    assert b'"type":"invalid_request_error","param":"messages","code":"context_length_exceeded"' in error_body(exc)
    plain = status_error("llama", 422, b"messages: field required", {})
    assert error_status(plain) == 422 and plain.message == "messages: field required"
    assert plain.type == "invalid_request_error" and plain.code is None


@pytest.mark.parametrize("status", [400, 413, 422, 401, 403, 404, 500, 503])
def test_everything_else_is_the_gateways_502(status: int) -> None:
    # llama.cpp's server answers a request id that is not a UUID with an empty 400: no word of what
    # the caller did wrong, so not the caller's to fix (the capture's body is empty)
    body = (LLAMACPP / "error_request_id.http").read_bytes().partition(b"\r\n\r\n")[2]
    assert body == b""
    exc = status_error("llama", status, body, {})
    assert type(exc) is UpstreamError and error_status(exc) == 502
    assert exc.message == f"service 'llama' answered {status}: empty body"
    assert exc.retryable is (status >= 500)


def test_a_429_stays_429_with_its_retry_after() -> None:
    exc = status_error("oa", 429, b'{"error":{"message":"slow down","type":"requests"}}', {"Retry-After": "3"})
    assert error_status(exc) == 429 and exc.headers == {"Retry-After": "3"} and exc.retryable
