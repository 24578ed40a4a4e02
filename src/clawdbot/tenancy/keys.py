"""Virtual keys: generated, hashed, verified.

A key is `sk-cb-` and 32 random bytes (base64url). The database holds only HMAC-SHA256(secret, key):
a stolen database gives no usable key, and without the secret not even a way to test guesses
offline. The secret is `server.key_secret` / CLAWDBOT_KEY_SECRET, else derived from the master key
with HKDF-SHA256. Changing it (or the master key it is derived from) invalidates every key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "sk-cb-"
KEY_BYTES = 32
_HKDF_SALT = b"clawdbot"
_HKDF_INFO = b"clawdbot virtual key hashing v1"


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 (extract, then expand); one block covers the 32 bytes we need, the loop the rest."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out, counter = out + block, counter + 1
    return out[:length]


def hashing_secret(key_secret: str | None, master_key: str | None) -> bytes:
    if key_secret:
        return key_secret.encode()
    if master_key:
        return hkdf_sha256(master_key.encode(), _HKDF_SALT, _HKDF_INFO)
    raise ValueError("virtual keys need server.key_secret (CLAWDBOT_KEY_SECRET) or a master key")


def generate() -> str:
    return PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).rstrip(b"=").decode()


def hint(key: str) -> str:
    body = key[len(PREFIX):]
    return f"{PREFIX}{body[:4]}...{body[-4:]}"


class KeyHasher:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def hash(self, key: str) -> str:
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()

    def verify(self, key: str, key_hash: str) -> bool:
        return hmac.compare_digest(self.hash(key), key_hash)
