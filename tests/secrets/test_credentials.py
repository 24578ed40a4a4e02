"""routing/credentials.py: what a service's credentials are, and that an error or a probe detail loses
them (the fix for upstream errors that quote the gateway's key; tests/secrets/test_no_leaks.py runs
it end to end)."""

from __future__ import annotations

import msgspec

from clawdbot.config.schema import Service
from clawdbot.core.errors import UpstreamError
from clawdbot.routing.credentials import credentials, redact, scrub

KEY = "sk-upstream-0123456789abcdef"


def service(**fields: object) -> Service:
    return msgspec.convert({"name": "up", "type": "openai", "endpoint": "http://127.0.0.1:9/v1", **fields}, Service)


def test_the_key_secret_headers_and_url_passwords_are_credentials() -> None:
    svc = service(auth={"type": "bearer", "key": KEY}, headers={"X-Api-Key": "hdr-secret-value-1", "X-Trace": "abc"},
                  endpoint="http://user:p%40ssword-99@127.0.0.1:9/v1", proxy="http://u:proxy-pass-42@127.0.0.1:3128")
    found = credentials(svc)
    for value in (KEY, "hdr-secret-value-1", "p@ssword-99", "p%40ssword-99", "proxy-pass-42"):
        assert value in found, value
    assert "abc" not in found and "user" not in found
    assert list(found) == sorted(found, key=len, reverse=True)


def test_a_bearer_header_gives_its_token_too_and_short_values_are_left() -> None:
    found = credentials(service(headers={"Authorization": "Bearer tok-0123456789"}, auth={"key": "short"}))
    assert "tok-0123456789" in found and "Bearer tok-0123456789" in found and "short" not in found
    assert credentials(service()) == ()


def test_redact_and_scrub_take_every_occurrence_out() -> None:
    secrets = credentials(service(auth={"key": KEY}))
    assert redact(f"Key rejected: Bearer {KEY} ({KEY})", secrets) == "Key rejected: Bearer *** (***)"
    exc = UpstreamError(f"service 'up' answered 401: bad key {KEY}", upstream_status=401)
    scrub(exc, secrets)
    assert exc.message == "service 'up' answered 401: bad key ***" and str(exc) == exc.message
    assert exc.upstream_status == 401 and exc.status == 502
    untouched = UpstreamError("service 'up' answered 500: boom", upstream_status=500)
    scrub(untouched, secrets)
    assert untouched.message == "service 'up' answered 500: boom"
