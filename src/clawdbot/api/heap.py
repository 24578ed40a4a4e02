"""The garbage collector's policy for a long-running gateway (`server.gc_freeze`): what survives a
collection is frozen, so later collections do not walk it again.

CPython 3.11's full collection walks every tracked object, and the gateway holds ~90 of them per
open request (coroutines, bound methods, buffers). With 10,000 streams open that is ~1M objects and
a 0.65-0.9 s stall of the event loop each time, and a growing heap (streams opening) sets one off
every few seconds (docs/architecture.md, "The garbage collector"). Start-up already freezes what it
built (api/app.py); this policy goes on freezing, from a `gc.callbacks` hook at the end of a
collection:

- `full` (the default): the survivors of each full collection, when every tracked object has just
  been found reachable. A full collection then walks what came since the last one.
- `young`: the survivors of every collection. No collection walks an object twice; the stalls are
  the young collections' (~1 ms); but any reference cycle alive at some collection and dropped
  later stays until the next thaw, where `full` keeps only those alive at a full one.
- `none`: CPython's collector as it is.

Freezing has a side effect on CPython's trigger for young collections, which counts allocations
minus deallocations of any generation: an open stream's per-token objects (the future it waits on,
the coroutine's wrappers) are frozen at one collection and die at the stream's next token while
their successors are born young, so the count stands still while the young generation fills with
every open stream's current ones (~10 per stream woken since: 33,000 objects and a 9 ms collection
with 9,900 streams opening, 53 ms once while they were held; more with more streams;
docs/benchmarks.md). So in `young` mode the policy can also run a young collection every
`young_every` seconds on the loop (off by default): each walks what the last interval made and is
still alive (~10 us when that is nothing), which bounds it, but every per-token object that lives
longer than the interval is then walked once: ~2% of a core at 9,900 slow streams, and more small
pauses (the held streams' loop lag max 12-15 ms with it, 5 ms without, where nothing else
allocates). Not in `full` mode: there its full collections are the longer stalls, and timed young
ones only move per-token objects on to the older generations (+3.7% of a core, measured).

A frozen object that later becomes part of a garbage cycle is not freed until the frozen objects
are given back: every `thaw_interval` seconds they are, and the next full collection walks
everything once (one long stall per interval) and frees what was kept; what it freed is counted
(`garbage`), so an operator sees what the policy kept. The request paths make no cycles
(tests/e2e/test_reference_cycles.py)."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

MODES = ("full", "young", "none")


class HeapPolicy:
    def __init__(self, mode: str, thaw_interval: float, clock: Callable[[], float] = time.monotonic,
                 young_every: float = 0.0) -> None:
        if mode not in MODES:
            raise ValueError(f"gc_freeze must be one of {', '.join(MODES)}")
        self.mode = mode
        self.thaw_interval = thaw_interval
        self.young_every = young_every  # seconds between timed young collections (0: none)
        self._timer: asyncio.TimerHandle | None = None
        self.clock = clock
        self.freezes = 0  # collections whose survivors were frozen
        self.thaws = 0  # times the frozen objects went back to be walked
        self.garbage = 0  # objects the full collections after thaws freed: what freezing had kept
        self._first = 2 if mode == "full" else 0  # the youngest generation whose survivors are frozen
        self._thaw_at = 0.0  # set by install()
        self._thawed = False  # given back: no freezing until a full collection has walked everything
        self._installed = False

    def install(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """From now on: the callback, and with `loop` (and `young_every`) the timed young collections."""
        if self.mode != "none" and not self._installed:
            self._thaw_at = self.clock() + self.thaw_interval
            gc.callbacks.append(self._after)
            self._installed = True
            if loop is not None and self.young_every > 0 and self.mode == "young":
                self._timer = loop.call_later(self.young_every, self._young, loop)

    def remove(self) -> None:
        """At shutdown: no more freezing, and what was frozen is walked again (a process that goes
        on, such as a test's, keeps no garbage frozen for good)."""
        if self._installed:
            self._installed = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            gc.callbacks.remove(self._after)
            gc.unfreeze()

    def _young(self, loop: asyncio.AbstractEventLoop) -> None:
        """The timed young collection (generation 0; `_after` freezes its survivors), then the next
        one in `young_every` seconds."""
        gc.collect(0)
        self._timer = loop.call_later(self.young_every, self._young, loop)

    def _after(self, phase: str, info: dict[str, Any]) -> None:
        """A gc callback (run by whichever thread collected). At a collection's end: freeze its
        survivors; or, the interval over, give the frozen objects back for the next full one."""
        if phase != "stop":
            return
        generation = info.get("generation", 0)
        if self._thawed:
            if generation == 2:  # everything walked: what it found was kept by the freezing
                self._thawed = False
                self.garbage += info.get("collected", 0)
                gc.freeze()
                self.freezes += 1
            return
        if generation < self._first:
            return
        now = self.clock()
        if now >= self._thaw_at:
            self._thaw_at = now + self.thaw_interval
            gc.unfreeze()
            self._thawed = True
            self.thaws += 1
        else:
            gc.freeze()
            self.freezes += 1

    def counts(self) -> dict[str, int]:
        """For /metrics (not gc.get_freeze_count(): it walks the whole frozen list, ~1M objects with
        10,000 streams open)."""
        return {"freezes": self.freezes, "thaws": self.thaws, "garbage": self.garbage}
