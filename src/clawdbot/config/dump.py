"""A Config as plain data (for `clawdbot config show`): every field with its effective value, or only
those that differ from the defaults, with secrets masked.

What counts as a secret is decided by name, so that a field added later is masked without being
listed here: a mapping key that names a key, secret, token, password or credential (`master_key`,
`key_secret`, `auth.key`, a plugin's `api_key`), a header that carries one (`Authorization`,
`X-Api-Key`, `Cookie`), and the password of any URL (`postgresql://user:pw@host/db`). Key *ids*
(`keys: [...]`, `key_id`) are not secrets and stay readable."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

MASK = "********"
_SECRET_NAME = re.compile(
    r"(^|[_-])(key|api[_-]?key|secret|token|password|passwd|credentials?|authorization|cookie|private[_-]?key)$",
    re.IGNORECASE)
_NOT_SECRET = frozenset({"key_id", "key_ids", "keys", "key_labels", "max_key_series", "key_cache_ttl"})


def is_secret_name(name: str) -> bool:
    return name not in _NOT_SECRET and _SECRET_NAME.search(name) is not None


def plain(value: Any, full: bool = True) -> Any:
    """`value` as JSON-like data. `full`: every struct field, defaults included (the effective
    config); otherwise only the fields set (what a YAML file would need to say)."""
    if isinstance(value, msgspec.Struct):
        if not full:
            return _pruned(msgspec.to_builtins(value))
        out = {}
        for f in msgspec.structs.fields(value):
            out[f.encode_name] = plain(getattr(value, f.name), full)
        return out
    if isinstance(value, dict):
        return {str(k): plain(v, full) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v, full) for v in value]
    return value


def _pruned(data: Any) -> Any:
    """Without the sections left empty (a nested struct at its defaults encodes as `{}`)."""
    if isinstance(data, dict):
        kept = {k: _pruned(v) for k, v in data.items()}
        return {k: v for k, v in kept.items() if v != {} or not isinstance(data[k], dict)}
    if isinstance(data, list):
        return [_pruned(v) for v in data]
    return data


def mask_url(url: str) -> str:
    """The URL with its password (and a token in the user part of `redis://:pw@host`) masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def masked(data: Any) -> Any:
    """`data` (from `plain`) with every secret replaced by MASK; a secret left empty stays empty, so
    that `config show` still tells a set secret from a missing one."""
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            if isinstance(v, str) and v and is_secret_name(k):
                out[k] = MASK
            else:
                out[k] = masked(v)
        return out
    if isinstance(data, list):
        return [masked(v) for v in data]
    if isinstance(data, str) and "://" in data and "@" in data:
        return mask_url(data)
    return data
