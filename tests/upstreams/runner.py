"""Run an aiohttp.web.Application on 127.0.0.1 in a daemon thread with its own event loop.

    with ServerThread(app) as server:
        httpx.get(server.url + "/v1/models")

The socket is bound before the thread starts, so `.url` and `.port` are valid as soon as `start()`
returns. Handlers are cancelled when their client disconnects (`handler_cancellation=True`), which is
what lets a test server notice that a gateway abandoned an upstream call. `stop()` cancels whatever
is still running (a handler that hangs on purpose, for instance) and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from typing import Any, Self, TypeVar

from aiohttp import web

T = TypeVar("T")


class ServerThread:
    def __init__(
        self,
        app: web.Application,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        handler_cancellation: bool = True,
        name: str = "test-upstream",
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self._handler_cancellation = handler_cancellation
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash: http://127.0.0.1:PORT"""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        if self.running:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        self.loop = loop
        self._runner = web.AppRunner(
            self.app,
            handle_signals=False,
            shutdown_timeout=0.2,
            handler_cancellation=self._handler_cancellation,
            access_log=None,
        )
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                assert self._runner is not None
                loop.run_until_complete(self._runner.setup())
                loop.run_until_complete(web.SockSite(self._runner, sock).start())
            except BaseException as exc:
                failure.append(exc)
                sock.close()
                started.set()
                return
            started.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError(f"{self.name} did not start within 10s")
        if failure:
            self._thread.join(5)
            loop.close()
            self._thread = self.loop = None
            raise failure[0]
        return self

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run a coroutine on the server's loop from another thread and return its result."""
        if self.loop is None:
            coro.close()
            raise RuntimeError("server is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self.loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
        if not thread.is_alive():
            loop.close()
        self._thread = self.loop = None

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # Whatever is still running (a handler hanging on purpose) is cancelled and awaited.
        me = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
