"""CPython's young-collection trigger, starved by freezing (docs/benchmarks.md, "freezing starves the
young collections' trigger"): objects frozen at one collection that die while their successors are
born young leave the allocation count where it was, so no young collection runs while the young
generation fills with every replacement.

    .venv/bin/python bench/gc_trigger.py [--streams 10000] [--tokens 30]

Each of `--streams` "streams" holds one object (and its list); `--tokens` times over, every one is
replaced, as an open stream's per-token objects are. Printed: the young collections that ran and
the young generation's size at the end (api/heap.py's `young` mode collects on a timer because of
this)."""

from __future__ import annotations

import argparse
import gc


class PerToken:
    def __init__(self) -> None:
        self.parts = [1]  # a second tracked object, as a waiter's callbacks list is


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=10_000)
    ap.add_argument("--tokens", type=int, default=30)
    a = ap.parse_args()
    streams = [PerToken() for _ in range(a.streams)]
    gc.collect()
    gc.freeze()  # what heap.py's young mode does after a collection: everything alive now is frozen
    young = [0]
    gc.callbacks.append(lambda phase, info: young.__setitem__(0, young[0] + (phase == "stop")))
    for _ in range(a.tokens):
        for i in range(len(streams)):
            streams[i] = PerToken()  # the frozen one dies, its successor is born young
    print(f"{a.streams * a.tokens:,} replacements: {young[0]} collections ran; allocation count "
          f"{gc.get_count()[0]}, young generation {len(gc.get_objects(generation=0)):,} objects")
    gc.unfreeze()


if __name__ == "__main__":
    main()
