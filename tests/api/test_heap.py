"""api/heap.py against CPython's real collector: survivors are frozen (after full collections, or
after every one), collections leave frozen objects alone, the interval gives them back for one
full walk, and a cycle made of frozen objects is found then and counted."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from clawdbot.api.heap import HeapPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture()
def clean_gc() -> Iterator[None]:
    """Only the test's own collections (automatic ones would add freezes); afterwards the test
    process's collector as it was: nothing frozen, no callback of ours left."""
    callbacks, enabled = list(gc.callbacks), gc.isenabled()
    gc.disable()
    gc.unfreeze()
    yield
    gc.callbacks[:] = callbacks
    gc.unfreeze()
    if enabled:
        gc.enable()


def test_a_full_collection_freezes_its_survivors(clean_gc: None) -> None:
    policy = HeapPolicy("full", 600, Clock())
    policy.install()
    kept = [Node() for _ in range(1000)]
    assert gc.get_freeze_count() == 0
    gc.collect()
    frozen = gc.get_freeze_count()
    assert frozen >= len(kept) and policy.counts() == {"freezes": 1, "thaws": 0, "garbage": 0}
    gc.collect(1)  # a young collection: left alone in this mode
    assert policy.freezes == 1 and gc.get_freeze_count() == frozen
    more = [Node() for _ in range(500)]
    gc.collect()  # the next full collection walks only what came since, and freezes it too
    assert gc.get_freeze_count() >= frozen + len(more) and policy.freezes == 2
    policy.remove()
    assert gc.get_freeze_count() == 0  # given back
    gc.collect()
    assert policy.freezes == 2 and gc.get_freeze_count() == 0  # removed: no longer called


def test_young_freezes_after_every_collection(clean_gc: None) -> None:
    policy = HeapPolicy("young", 600, Clock())
    policy.install()
    kept = [Node() for _ in range(1000)]
    gc.collect(0)
    assert policy.freezes == 1 and gc.get_freeze_count() >= len(kept)


def test_the_interval_thaws_and_the_next_full_collection_frees_frozen_cycles(clean_gc: None) -> None:
    clock = Clock()
    policy = HeapPolicy("young", 600, clock)
    policy.install()
    a, b = Node(), Node()
    a.other, b.other = b, a  # alive now, a cycle later
    gc.collect(0)  # frozen while alive
    a = b = None  # type: ignore[assignment]  # now garbage that only the collector can free
    assert gc.collect() == 0  # frozen: not walked, not found
    clock.now += 600
    gc.collect(1)  # the interval is over: this collection's end gives everything back
    assert policy.thaws == 1 and gc.get_freeze_count() == 0
    freezes = policy.freezes
    gc.collect(0)  # given back: a young collection freezes nothing until the full walk
    assert policy.freezes == freezes and gc.get_freeze_count() == 0
    assert gc.collect() >= 2  # walked again: the cycle is found
    assert policy.garbage >= 2 and policy.freezes == freezes + 1 and gc.get_freeze_count() > 0


def test_young_mode_collects_on_a_timer(clean_gc: None) -> None:
    """Frozen objects dying hold CPython's allocation count down, so its own trigger may not fire
    while the young generation fills: `young` mode runs a young collection every `young_every`
    seconds on the loop (the fixture turned automatic collections off: this one is the timer's)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        policy = HeapPolicy("young", 600, young_every=0.01)
        collected = asyncio.Event()
        gc.callbacks.append(lambda phase, info: phase == "stop" and info["generation"] == 0 and collected.set())
        policy.install(loop)
        kept = [Node() for _ in range(1000)]
        await asyncio.wait_for(collected.wait(), 10)
        assert policy.freezes >= 1 and gc.get_freeze_count() >= len(kept)
        timer = policy._timer
        assert timer is not None and not timer.cancelled()  # the next one is due
        policy.remove()
        assert timer.cancelled() and policy._timer is None

    asyncio.run(main())


def test_full_mode_runs_no_timer(clean_gc: None) -> None:
    """`full`: its full collections are the longer stalls; timed young ones would only move objects
    on to older generations. No timer, whatever `young_every` says."""

    async def main() -> None:
        policy = HeapPolicy("full", 600, young_every=0.01)
        policy.install(asyncio.get_running_loop())
        assert policy._timer is None
        policy.remove()

    asyncio.run(main())


def test_none_leaves_the_collector_alone(clean_gc: None) -> None:
    policy = HeapPolicy("none", 600)
    policy.install()
    assert policy._after not in gc.callbacks
    gc.collect()
    assert gc.get_freeze_count() == 0 and policy.counts() == {"freezes": 0, "thaws": 0, "garbage": 0}
    policy.remove()  # never installed: nothing to remove, no error
    with pytest.raises(ValueError, match="gc_freeze"):
        HeapPolicy("off", 600)
