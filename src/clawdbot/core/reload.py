"""Hot reload: the config file is read again on SIGHUP, on `POST /admin/reload`, and when the file
changes (polled every `server.watch_interval` seconds). A config that fails to load, or that cannot
be served (a hook that does not import), is rejected with its reason and the running one keeps
serving. Otherwise a new runtime is built and swapped in (core/runtime.py): requests in flight
finish on the config they started with.

`server:` settings (host, port, master key, body limit, logging) are read at start only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from clawdbot.config.loader import error_at, file_signature
from clawdbot.config.schema import Config
from clawdbot.core.runtime import build_runtime
from clawdbot.routing.hook import HookError

if TYPE_CHECKING:
    from clawdbot.core.gateway import Gateway

log = logging.getLogger("clawdbot.reload")


class ReloadError(Exception):
    """The new config was rejected; the message says why."""


class Reloader:
    def __init__(self, gateway: Gateway, load: Callable[[], Config] | None, path: str | None) -> None:
        self.gateway = gateway
        self.load = load  # reads the config file anew, with the same flags and environment as at start
        self.path = path
        self._lock: asyncio.Lock | None = None
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
        interval = self.gateway.config.server.watch_interval
        if self.path and interval > 0:
            self._watch = loop.create_task(self._watch_file(self.path, interval))

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

    async def apply(self, config: Config) -> dict[str, Any]:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            gw = self.gateway
            old = gw.runtime
            if config.server != old.config.server:
                log.warning("server settings changed in the config file; they take effect at the next restart")
                config = msgspec.structs.replace(config, server=old.config.server)
            try:
                rt = build_runtime(config, old, gw.breakers, gw.metrics, gw.monitor, None, old.generation + 1)
            except HookError as exc:
                where = error_at(self.path, ("models", exc.model, "hook"), str(exc)) if self.path and exc.model else exc
                raise ReloadError(f"the new config cannot be served: {where}") from exc
            except Exception as exc:
                raise ReloadError(f"the new config cannot be served: {exc}") from exc
            new = gw.adopt(rt)
            gw.swap(rt)
            if new:  # probe what is new now, in the background: routing treats "not probed yet" as up
                task = asyncio.get_running_loop().create_task(self._probe(new))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
            return {"generation": rt.generation, "services": sorted(rt.upstreams), "models": sorted(config.models),
                    "new_services": sorted(new)}

    async def _probe(self, names: list[str]) -> None:
        monitor = self.gateway.monitor
        await asyncio.gather(*(monitor.probe(n) for n in names if n in monitor.states), return_exceptions=True)
