"""The conventions of stored values, without the SQL layer: prefixed random ids and timestamps in
milliseconds since the epoch. Light to import (the admin API builds ids before any database opens)."""

from __future__ import annotations

import base64
import itertools
import os
import secrets
import time


def new_id(prefix: str) -> str:
    """`<prefix>_` and 80 random bits in lowercase base32: short, URL-safe, unguessable."""
    return prefix + "_" + base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()


_PROCESS = os.urandom(8).hex()  # 64 random bits per process: ids from two processes never meet
_counter = itertools.count(1)


def unique_hex() -> str:
    """A unique id for hot paths (rate-limit tickets, budget holds, spend records): the process's
    random prefix and a counter. Unique, not secret; ~10x cheaper than uuid4."""
    return f"{_PROCESS}{next(_counter):x}"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class MonotonicMs:
    """Milliseconds since the epoch that never repeat or go back within one process, so rows written
    in the same millisecond still order (and page by timestamp) without ties."""

    def __init__(self) -> None:
        self._last = 0

    def __call__(self) -> int:
        self._last = max(wall_ms(), self._last + 1)
        return self._last
