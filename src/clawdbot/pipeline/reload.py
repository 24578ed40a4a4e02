"""Hot reload's trigger: the config file is read again on SIGHUP, on `POST /admin/reload`, and when the
file changes (polled every `interval` seconds), and handed to `apply` (Gateway.apply_config), which
builds and swaps in a new runtime or raises ReloadError with the reason; the running config then
keeps serving. The trigger knows nothing of the gateway: it calls back.

`server:` settings (host, port, master key, body limit, logging) are read at start only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from clawdbot.config.loader import file_signature
from clawdbot.config.schema import Config

log = logging.getLogger("clawdbot.reload")
Apply = Callable[[Config], Awaitable[dict[str, Any]]]


class ReloadError(Exception):
    """The new config was rejected; the message says why."""


class Reloader:
    def __init__(self, apply: Apply, load: Callable[[], Config] | None, path: str | None,
                 interval: float = 0.0) -> None:
        self.apply = apply
        self.load = load  # reads the config file anew, with the same flags and environment as at start
        self.path = path
        self.interval = interval
        self._watch: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self._signal = False

    def start(self) -> None:
        if self.load is None:
            return
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self._spawn, "SIGHUP")
            self._signal = True
        except (ValueError, RuntimeError, NotImplementedError, AttributeError):  # not the main thread
            pass
        if self.path and self.interval > 0:
            self._watch = loop.create_task(self._watch_file(self.path, self.interval))

    def stop(self) -> None:
        if self._signal:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._signal = False
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def _spawn(self, why: str) -> None:
        task = asyncio.get_running_loop().create_task(self.reload(why))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _watch_file(self, path: str, interval: float) -> None:
        seen = file_signature(path)
        while True:
            await asyncio.sleep(interval)
            now = file_signature(path)
            if now != seen and now is not None:
                seen = now
                await self.reload("the config file changed")

    async def reload(self, why: str) -> tuple[bool, str | dict[str, Any]]:
        """Read the config file and apply it. (ok, summary) or (False, the reason it was rejected)."""
        if self.load is None:
            return False, "there is no config file to reload (the gateway was started without --config)"
        try:
            config = await asyncio.to_thread(self.load)
            summary = await self.apply(config)
        except Exception as exc:  # ConfigError, ReloadError, a bad CLAWDBOT_PORT: all reasons to keep the old one
            reason = str(exc) or type(exc).__name__
            log.error("config reload (%s) rejected, the previous config keeps serving: %s", why, reason)
            return False, reason
        log.info("config reloaded (%s): generation %d, %d services, %d models", why, summary["generation"],
                 len(summary["services"]), len(summary["models"]))
        return True, summary
