"""api/heap.py against CPython's real collector: survivors of a full collection are frozen, young
collections leave the frozen objects alone, the interval thaws them for one full walk, and a
cycle made of frozen objects is found after the thaw."""

from __future__ import annotations

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
    """The test process's collector as it was: nothing frozen, no callback of ours left."""
    callbacks = list(gc.callbacks)
    gc.unfreeze()
    yield
    gc.callbacks[:] = callbacks
    gc.unfreeze()


def test_a_full_collection_freezes_its_survivors(clean_gc: None) -> None:
    clock = Clock()
    policy = HeapPolicy(600, clock)
    policy.install()
    kept = [Node() for _ in range(1000)]
    assert gc.get_freeze_count() == 0
    gc.collect()
    frozen = gc.get_freeze_count()
    assert frozen >= len(kept) and policy.counts() == {"freezes": 1, "thaws": 0}
    gc.collect(1)  # a young collection: not the policy's business
    assert policy.freezes == 1 and gc.get_freeze_count() == frozen
    more = [Node() for _ in range(500)]
    gc.collect()  # the next full collection walks only what came since, and freezes it too
    assert gc.get_freeze_count() >= frozen + len(more) and policy.freezes == 2
    policy.remove()
    assert gc.get_freeze_count() == 0  # given back
    gc.collect()
    assert policy.freezes == 2 and gc.get_freeze_count() == 0  # removed: no longer called


def test_the_interval_thaws_and_the_next_full_collection_finds_frozen_cycles(clean_gc: None) -> None:
    clock = Clock()
    policy = HeapPolicy(600, clock)
    policy.install()
    a, b = Node(), Node()
    a.other, b.other = b, a  # alive now, a cycle later
    gc.collect()  # frozen while alive
    a = b = None  # type: ignore[assignment]  # now garbage that only the collector can free
    assert gc.collect() == 0  # frozen: not walked, not found
    clock.now += 600
    gc.collect()  # the interval is over: this collection's end thaws everything
    assert policy.thaws == 1 and gc.get_freeze_count() == 0
    assert gc.collect() >= 2  # walked again: the cycle is found (and the survivors frozen again)
    assert policy.freezes >= 2 and gc.get_freeze_count() > 0


def test_interval_zero_leaves_the_collector_alone(clean_gc: None) -> None:
    policy = HeapPolicy(0)
    policy.install()
    assert policy._after not in gc.callbacks
    gc.collect()
    assert gc.get_freeze_count() == 0 and policy.counts() == {"freezes": 0, "thaws": 0}
    policy.remove()  # never installed: nothing to remove, no error
