"""Warnings that could repeat per request (a failing hook, failover under an outage), logged at
most once per `every` seconds per key, with how many were held back. The access line stays the
only per-request log."""

from __future__ import annotations

import logging
import time

MAX_KEYS = 1024  # keys remembered; beyond that the table starts over (memory stays bounded)


class Notes:
    def __init__(self, logger: logging.Logger, every: float = 10.0) -> None:
        self.log = logger
        self.every = every
        self._last: dict[str, tuple[float, int]] = {}  # key -> (last logged at, held back since)

    def warn(self, key: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.every:
            self._last[key] = (last[0], last[1] + 1)
            return
        if len(self._last) >= MAX_KEYS:
            self._last.clear()
        self._last[key] = (now, 0)
        if last is not None and last[1]:
            msg += f" ({last[1]} more like it in the last {self.every:g}s)"
        self.log.warning(msg, *args)
