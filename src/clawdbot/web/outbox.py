"""Frames waiting for one socket's writer.

Bounded in frames and in characters: a client that stops reading first fills the kernel's buffers,
then uvicorn's send blocks, then this fills, and the socket is cut off (`cut()`). Its logical
connection stays resumable, so a client that was only slow can come back. Memory per socket is
bounded either way."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

MAX_FRAMES = 4096
MAX_CHARS = 8 * 1024 * 1024


class Outbox:
    def __init__(self, max_frames: int = MAX_FRAMES, max_chars: int = MAX_CHARS) -> None:
        self.max_frames = max_frames
        self.max_chars = max_chars
        self._frames: deque[str] = deque()
        self._chars = 0
        self._ready = asyncio.Event()
        self.closed = False
        self.finishing = False  # no more frames: the writer sends what is queued, then stops
        self.overflowed = False
        # set by the socket: ends it (its writer may be blocked in a send that will never finish)
        self.on_cut: Callable[[], None] | None = None

    def push(self, frame: str) -> bool:
        """Queue a frame; False (and the outbox closes) when it is closed or would overflow. One
        frame is always accepted into an empty outbox, however large (a long session's history)."""
        if self.closed or self.finishing:
            return False
        if self._frames and (len(self._frames) >= self.max_frames or self._chars + len(frame) > self.max_chars):
            self.overflowed = True
            self.cut()
            return False
        self._frames.append(frame)
        self._chars += len(frame)
        self._ready.set()
        return True

    def cut(self) -> None:
        """Close and end the socket."""
        self.close()
        if self.on_cut is not None:
            self.on_cut()

    def finish(self) -> None:
        self.finishing = True
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._frames.clear()
        self._chars = 0
        self._ready.set()

    async def take(self, most: int = 64) -> list[str]:
        """Up to `most` queued frames, waiting for one; [] once closed. Frames count against the
        bound until taken, and the writer takes a few at a time, so the bound holds."""
        while not self._frames:
            if self.closed or self.finishing:
                return []
            self._ready.clear()
            await self._ready.wait()
        out = [self._frames.popleft() for _ in range(min(most, len(self._frames)))]
        self._chars -= sum(map(len, out))
        return out

    def __len__(self) -> int:
        return len(self._frames)
