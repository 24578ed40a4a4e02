"""The garbage collector's policy for a long-running gateway: what survived a full collection is
frozen, so the next full collection walks only what came after it.

CPython 3.11's full collection walks every tracked object, and the gateway holds ~90 of them per
open request (coroutines, bound methods, buffers). With 10,000 streams open that is ~1M objects and
a 0.65-1 s stall of the event loop each time, and a growing heap (streams opening) sets one off
every time it has grown by a quarter (docs/benchmarks.md, issue 17). Start-up already freezes what
it built (api/app.py); this module does the same after every full collection, from a `gc.callbacks`
hook at its end, when every tracked object has just been proven reachable: a full collection then
costs what the heap gained since the last one, not the whole heap.

The price: an object frozen while alive that later becomes part of a reference cycle is not
freed, since frozen objects are never walked. The request paths leave no cycles (a census of the
unreachable objects after plain, streamed, aborted and failed requests finds none: the upstream
response's parser and the failover's last error were the two, now broken), so what stays is rare;
to bound it anyway, every `thaw_interval` seconds the frozen objects go back to the oldest
generation and the next full collection walks everything once (one long pause per interval)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any


class HeapPolicy:
    def __init__(self, thaw_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        """`thaw_interval` 0: no freezing after start-up (CPython's collector as it is)."""
        self.thaw_interval = thaw_interval
        self.clock = clock
        self.freezes = 0  # full collections whose survivors were frozen
        self.thaws = 0  # times the frozen objects went back to be walked
        self._thaw_at = clock() + thaw_interval
        self._installed = False

    def install(self) -> None:
        if self.thaw_interval > 0 and not self._installed:
            self._thaw_at = self.clock() + self.thaw_interval
            gc.callbacks.append(self._after)
            self._installed = True

    def remove(self) -> None:
        """At shutdown: no more freezing, and what was frozen is walked again (a process that goes
        on, such as a test's, keeps no garbage frozen for good)."""
        if self._installed:
            self._installed = False
            gc.callbacks.remove(self._after)
            gc.unfreeze()

    def _after(self, phase: str, info: dict[str, Any]) -> None:
        """A gc callback: at the end of a full collection, freeze its survivors, or (the interval
        over) thaw everything for the next one. Whichever thread ran the collection runs this."""
        if phase != "stop" or info.get("generation") != 2:
            return
        now = self.clock()
        if now >= self._thaw_at:
            self._thaw_at = now + self.thaw_interval
            gc.unfreeze()
            self.thaws += 1
        else:
            gc.freeze()
            self.freezes += 1

    def counts(self) -> dict[str, int]:
        """For /metrics (not gc.get_freeze_count(): it walks the whole frozen list, ~1M objects with
        10,000 streams open)."""
        return {"freezes": self.freezes, "thaws": self.thaws}
