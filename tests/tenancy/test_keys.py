"""Key generation and hashing (tenancy/keys.py) and the principal built from a key."""

from __future__ import annotations

import base64

import pytest

from clawdbot.state.keys_base import KeyRecord
from clawdbot.tenancy.keys import PREFIX, KeyHasher, generate, hashing_secret, hint, hkdf_sha256
from clawdbot.tenancy.principal import MASTER, from_key


def test_keys_are_prefixed_random_and_32_bytes() -> None:
    keys = {generate() for _ in range(100)}
    assert len(keys) == 100
    for k in keys:
        assert k.startswith(PREFIX)
        assert len(base64.urlsafe_b64decode(k[len(PREFIX) :] + "=")) == 32
    k = next(iter(keys))
    assert hint(k) == f"{k[:10]}...{k[-4:]}"


def test_hkdf_matches_rfc5869_test_case_1() -> None:
    okm = hkdf_sha256(bytes([0x0B] * 22), bytes(range(13)), bytes(range(0xF0, 0xFA)), 42)
    assert okm.hex() == ("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")


def test_the_secret_comes_from_key_secret_else_the_master_key() -> None:
    assert hashing_secret("s3cret", "master") == b"s3cret"
    derived = hashing_secret(None, "master")
    assert len(derived) == 32 and derived != b"master" and derived == hashing_secret("", "master")
    assert hashing_secret(None, "other") != derived
    with pytest.raises(ValueError, match="key_secret"):
        hashing_secret(None, None)


def test_hash_is_keyed_and_verify_is_exact() -> None:
    k = generate()
    a, b = KeyHasher(b"one"), KeyHasher(b"two")
    assert a.hash(k) != b.hash(k)  # a changed secret invalidates every key
    assert len(a.hash(k)) == 64 and k not in a.hash(k)
    assert a.verify(k, a.hash(k)) and not a.verify(k + "x", a.hash(k))


def test_principal_from_a_key() -> None:
    p = from_key(
        KeyRecord(
            id="k_1",
            hint="h",
            allowed_models=["a"],
            tags=["gpu", "x"],
            metadata={"role": "admin", "priority": "high"},
            user_id="u",
            team_id="t",
            rpm=3,
        )
    )
    assert p.kind == "admin" and p.is_admin and p.name == "k_1"
    assert p.may_use("a") and not p.may_use("b") and not p.may_use(None)
    assert p.tags == ("gpu", "x") and (p.user_id, p.team_id, p.rpm) == ("u", "t", 3)
    plain = from_key(KeyRecord(id="k_2", hint="h"))
    assert plain.kind == "key" and not plain.is_admin and plain.may_use("anything")
    assert MASTER.is_admin and MASTER.name == "master"
