"""uvicorn's server, telling the app as soon as a signal asks it to stop. uvicorn then stops
accepting and waits up to timeout_graceful_shutdown for open connections before the lifespan's
shutdown, and a live stream (`clawdbot tail`) never ends by itself: without this, one open
`clawdbot tail` held every stop for the whole timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from clawdbot.observability.logging import flush_logs


class StoppingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, stopping: Callable[[], None]) -> None:
        super().__init__(config)
        self._stopping = stopping
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None:  # a signal handler runs between any two bytecodes: into the loop
            self._loop.call_soon_threadsafe(self._stopping)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                # uvicorn re-raises a SIGTERM once this block is left: its default action ends the
                # process without atexit, so the log's last batch is written here
                flush_logs()
