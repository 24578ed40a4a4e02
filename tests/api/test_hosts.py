"""api/hosts.py: the Host names a gateway answers (DNS rebinding)."""

from __future__ import annotations

import pytest

from clawdbot.api.hosts import AllowedHosts, host_name, is_own_origin, split_port


@pytest.mark.parametrize(("raw", "name"), [
    (b"localhost:18789", "localhost"), (b"LocalHost", "localhost"), (b"[::1]:80", "[::1]"), (b"[::1]", "[::1]"),
    (b"127.0.0.1:1", "127.0.0.1"), (b"Example.COM", "example.com"), (b" gw.example.com:443 ", "gw.example.com"),
])
def test_host_names(raw: bytes, name: str) -> None:
    assert host_name(raw) == name


@pytest.mark.parametrize(("text", "parts"), [
    ("[::1]:80", ("[::1]", "80")), ("[::1]", ("[::1]", "")), ("::1", ("::1", "")), ("[::1", ("[::1", "")),
    ("gw:*", ("gw", "*")), ("gw", ("gw", "")),
])
def test_split_port(text: str, parts: tuple[str, str]) -> None:
    assert split_port(text) == parts


def test_own_origin_is_http_or_https_at_the_host_the_request_names() -> None:
    assert is_own_origin("http://gw.example:18789", b"GW.example:18789 ")
    assert is_own_origin("https://[::1]:8443", b"[::1]:8443")
    for origin, host in (("http://gw.example:18789", b"gw.example"), ("http://gw.example", None),
                         ("http://gw.example", b""), ("ftp://gw.example", b"gw.example"),
                         ("gw.example", b"gw.example")):
        assert not is_own_origin(origin, host), (origin, host)


def test_without_a_key_only_loopback_and_listed_names_are_answered() -> None:
    hosts = AllowedHosts(["gw.example.com", "*.corp.example"], auth_on=False)
    for ok in (b"localhost:1", b"127.0.0.1", b"127.1.2.3:9", b"[::1]:8", b"app.localhost", b"gw.example.com:18789",
               b"a.corp.example", None):
        assert hosts.allowed(ok), ok
    for bad in (b"evil.example", b"localhost.evil.example", b"127.0.0.1.nip.io", b"corp.example", b"gw.example.com.x",
                b"", b"10.0.0.1"):
        assert not hosts.allowed(bad), bad


def test_with_a_key_any_host_unless_some_are_listed() -> None:
    assert AllowedHosts([], auth_on=True).allowed(b"anything.example")
    assert not AllowedHosts(["gw.example.com"], auth_on=True).allowed(b"anything.example")
    assert AllowedHosts(["*"], auth_on=False).allowed(b"anything.example")
