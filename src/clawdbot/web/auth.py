"""Who is on the other end of the page and the socket.

Without a master key the gateway serves loopback only and everyone is `local`. With one, a browser
logs in once (`POST /auth/login`) with the master key (principal `admin`) or a virtual key (its
user's chats: principal `user:<id>`, or `key:<id>` for a key without a user) and gets a signed
cookie; non-browser clients send the master key as a Bearer token. A virtual key's cookie carries
the key's stored hash, never the key, and every chat re-checks that hash (a revoked or expired key
stops working at once, cookie or not) and is metered, limited and charged to the key.

The cookie is stateless: HMAC-SHA256 over (version, expiry, user) with a key derived from the
master key, so it survives restarts and every replica with the same master key accepts it. The
price is that logout cannot revoke a copied cookie before it expires (12 h) or the key changes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Mapping

import msgspec

from clawdbot.api.hosts import is_own_origin

COOKIE = "clawdbot_session"
TTL_S = 12 * 3600
_VERSION = "v1"
# A purpose label for the key derivation: the master key itself never signs anything, so a token
# can never be replayed as (or reveal anything about) the key.
_PURPOSE = b"clawdbot web session cookie v1"
_CSRF_PURPOSE = b"clawdbot web csrf token v1"


class Principal(msgspec.Struct, frozen=True):
    user: str  # the store's owner id: sessions are scoped to it
    kind: str  # local | admin | key
    key_hash: str | None = None  # kind key: the virtual key's stored hash (tenancy/authn.py)


LOCAL = Principal("local", "local")
ADMIN = Principal("admin", "admin")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# what the workers of one `--workers N` command share (cli/workers.py sets it for them)
SHARED_SECRET_ENV = "CLAWDBOT_WORKER_SECRET"


class Authenticator:
    def __init__(self, master_key: str | None, shared_secret: str | None = None) -> None:
        """shared_secret: what the workers of one `--workers N` command share (cli/workers.py), so
        that a CSRF token one of them gave passes at another when there is no master key."""
        self.required = bool(master_key)
        self._bearer = f"Bearer {master_key}".encode() if master_key else None
        self._master = master_key.encode() if master_key else b""
        self._key = hmac.new(self._master, _PURPOSE, hashlib.sha256).digest() if master_key else b""
        # CSRF tokens: tied to the session cookie (or, without auth, to this process)
        process = shared_secret.encode() if shared_secret else os.urandom(32)
        self._csrf_key = hmac.new(self._master or process, _CSRF_PURPOSE, hashlib.sha256).digest()

    def check_key(self, given: str) -> bool:
        return self.required and hmac.compare_digest(given.encode(), self._master)

    def issue(self, principal: Principal, now: float | None = None) -> str:
        expiry = int((now if now is not None else time.time()) + TTL_S)
        who = principal.user if principal.key_hash is None else f"{principal.user}\n{principal.key_hash}"
        body = f"{_VERSION}.{expiry}.{_b64(who.encode())}"
        return f"{body}.{self._sign(body)}"

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def verify(self, token: str, now: float | None = None) -> Principal | None:
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != _VERSION or not self.required:
            return None
        body = ".".join(parts[:3])
        if not hmac.compare_digest(parts[3].encode(), self._sign(body).encode()):
            return None
        try:
            expiry, user = int(parts[1]), _unb64(parts[2]).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        if expiry <= (now if now is not None else time.time()):
            return None
        if user == ADMIN.user:
            return ADMIN
        owner, sep, key_hash = user.partition("\n")
        return Principal(owner, "key", key_hash) if sep and key_hash else None

    def principal(self, headers: Mapping[bytes, bytes]) -> Principal | None:
        """The caller of a request with these (lower-cased) headers, or None when unauthenticated."""
        if not self.required:
            return LOCAL
        given = headers.get(b"authorization")
        if given is not None and self._bearer is not None and hmac.compare_digest(given, self._bearer):
            return ADMIN
        token = cookie_value(headers.get(b"cookie", b""), COOKIE)
        return self.verify(token) if token else None

    def csrf(self, headers: Mapping[bytes, bytes]) -> str | None:
        """The token a page must send back in X-Clawdbot-CSRF on every write: an HMAC of its session
        cookie (of nothing, without auth), so another site can neither read nor make it. None
        without a session."""
        if not self.required:
            source = b"local"
        else:
            token = cookie_value(headers.get(b"cookie", b""), COOKIE)
            if not token:
                return None
            source = token.encode()
        return _b64(hmac.new(self._csrf_key, source, hashlib.sha256).digest())

    def csrf_ok(self, headers: Mapping[bytes, bytes]) -> bool:
        want = self.csrf(headers)
        given = headers.get(b"x-clawdbot-csrf")
        return want is not None and given is not None and hmac.compare_digest(given, want.encode())

    def set_cookie(self, principal: Principal, secure: bool) -> bytes:
        return _cookie(self.issue(principal), TTL_S, secure)

    @staticmethod
    def clear_cookie(secure: bool) -> bytes:
        return _cookie("", 0, secure)


def _cookie(value: str, max_age: int, secure: bool) -> bytes:
    text = f"{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}"
    return (text + "; Secure" if secure else text).encode()


def cookie_value(header: bytes, name: str) -> str | None:
    for part in header.decode("latin-1").split(";"):
        k, sep, v = part.strip().partition("=")
        if sep and k == name:
            return v.strip().strip('"')
    return None


def origin_allowed(headers: Mapping[bytes, bytes], allowed: frozenset[str]) -> bool:
    """A browser's Origin must be this gateway's own (as the Host header names it) or configured.
    No Origin: not a browser, nothing to hijack."""
    origin = headers.get(b"origin")
    if origin is None:
        return True
    text = origin.decode("latin-1").strip().rstrip("/").lower()
    if text in allowed:
        return True
    return is_own_origin(text, headers.get(b"host"))
