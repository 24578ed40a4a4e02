"""Runs `clawdbot` with the garbage collector off and, on SIGUSR1, counts what a full collection
finds unreachable (reference cycles: garbage that only the collector frees), by type, and how many
of them clawdbot's own code made, as one JSON line appended to $GC_CENSUS_OUT. For tests/e2e/test_reference_cycles.py:

    python tests/e2e/gc_census.py serve --config ...
"""

from __future__ import annotations

import collections
import gc
import json
import os
import signal
import sys
import types
from typing import Any


def name(o: Any) -> str:
    if isinstance(o, types.FrameType):
        return f"frame {o.f_code.co_qualname} ({o.f_code.co_filename.rsplit('/', 1)[-1]}:{o.f_lineno})"
    if isinstance(o, types.MethodType):
        return f"method {getattr(o.__func__, '__qualname__', '?')}"
    if isinstance(o, types.FunctionType | types.CoroutineType):
        return f"{type(o).__name__} {o.__qualname__}"
    if isinstance(o, BaseException):
        return f"exception {type(o).__qualname__}"
    return type(o).__qualname__


def ours(o: Any) -> bool:
    """Made by clawdbot's code: an instance of its classes, or its frames, functions, coroutines."""
    code = getattr(o, "f_code", None) or getattr(o, "cr_code", None) or getattr(o, "__code__", None)
    if isinstance(code, types.CodeType):
        return f"{os.sep}clawdbot{os.sep}" in code.co_filename
    if isinstance(o, types.MethodType):
        return str(getattr(o.__func__, "__module__", "")).startswith("clawdbot")
    return str(type(o).__module__).startswith("clawdbot.")


def census(signum: int, frame: Any) -> None:
    gc.set_debug(gc.DEBUG_SAVEALL)  # what is unreachable goes to gc.garbage instead of being freed
    try:
        unreachable = gc.collect()
        kinds = collections.Counter(name(o) for o in gc.garbage)
        own = collections.Counter(name(o) for o in gc.garbage if ours(o))
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
        gc.collect()  # the cycles just counted, freed: the next census counts only new ones
    with open(os.environ["GC_CENSUS_OUT"], "a") as f:
        f.write(json.dumps({"unreachable": unreachable, "kinds": kinds.most_common(40),
                            "ours": sum(own.values()), "our_kinds": own.most_common(40)}) + "\n")


def main() -> int:
    gc.disable()
    gc.enable = lambda: None  # off for good: young collections would free cycles
    signal.signal(signal.SIGUSR1, census)
    from clawdbot.cli.main import main as clawdbot

    return clawdbot(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
