"""Session cookies: signed, expiring, keyed by a key derived from the master key; Origin rules."""

from __future__ import annotations

from clawdbot.web.auth import ADMIN, LOCAL, TTL_S, Authenticator, cookie_value, origin_allowed


def test_tokens_round_trip_and_expire() -> None:
    a = Authenticator("sk-master")
    token = a.issue(ADMIN, now=1000)
    assert a.verify(token, now=1001) == ADMIN
    assert a.verify(token, now=1000 + TTL_S) is None
    assert Authenticator("sk-master").verify(token, now=1001) == ADMIN  # another process, same key
    assert Authenticator("sk-other").verify(token, now=1001) is None
    assert "sk-master" not in token


def test_tampering_is_detected() -> None:
    a = Authenticator("sk-master")
    v, expiry, user, sig = a.issue(ADMIN, now=1000).split(".")
    assert a.verify(f"{v}.{int(expiry) + 10**6}.{user}.{sig}", now=1001) is None
    assert a.verify(f"{v}.{expiry}.{user}.{sig[:-1]}x", now=1001) is None
    assert a.verify(f"v0.{expiry}.{user}.{sig}", now=1001) is None
    for junk in ("", "a.b", "v1.x.y.z", "v1.1.%%%.sig"):
        assert a.verify(junk) is None


def test_principal_from_headers() -> None:
    a = Authenticator("sk-master")
    cookie = f"a=1; clawdbot_session={a.issue(ADMIN)}; b=2".encode()
    assert a.principal({b"cookie": cookie}) == ADMIN
    assert a.principal({b"authorization": b"Bearer sk-master"}) == ADMIN
    assert a.principal({b"authorization": b"Bearer sk-mastex"}) is None
    assert a.principal({}) is None
    assert Authenticator(None).principal({}) == LOCAL
    assert Authenticator(None).verify(a.issue(ADMIN)) is None  # no key: no cookies at all
    assert a.check_key("sk-master") and not a.check_key("sk-master ") and not Authenticator(None).check_key("")


def test_cookie_parsing_and_attributes() -> None:
    assert cookie_value(b'x=1; clawdbot_session="abc"', "clawdbot_session") == "abc"
    assert cookie_value(b"clawdbot_session_other=1", "clawdbot_session") is None
    a = Authenticator("k")
    set_cookie = a.set_cookie(ADMIN, secure=True).decode()
    assert set_cookie.endswith("; Secure") and "HttpOnly; SameSite=Strict; Path=/; Max-Age=43200" in set_cookie
    assert a.clear_cookie(False) == b"clawdbot_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"


def test_origin_rules() -> None:
    allowed = frozenset({"https://chat.example.com"})
    host = {b"host": b"gw.local:18789"}
    assert origin_allowed(host, allowed)  # no Origin: not a browser
    assert origin_allowed({**host, b"origin": b"http://gw.local:18789"}, allowed)
    assert origin_allowed({**host, b"origin": b"https://GW.local:18789"}, allowed)
    assert origin_allowed({**host, b"origin": b"https://chat.example.com"}, allowed)
    for bad in (b"http://gw.local", b"http://gw.local:18789.evil.com", b"null", b"http://evil.com",
                b"https://chat.example.com.evil.com"):
        assert not origin_allowed({**host, b"origin": bad}, allowed), bad
    assert not origin_allowed({b"origin": b"http://gw.local:18789"}, frozenset())  # no Host to compare
