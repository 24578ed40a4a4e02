"""ThreadStream, the bridge from a worker thread's iterator to the event loop: lockstep hand-over."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

from clawdbot.providers.thread_stream import ThreadStream


def test_lockstep_worker_waits_for_the_consumer_to_ask_again() -> None:
    """The worker makes item i+1 only once the consumer is done with item i: strict alternation."""
    log: list[str] = []
    lock = threading.Lock()

    def note(event: str) -> None:
        with lock:
            log.append(event)

    def items() -> Iterator[int]:
        for i in range(5):
            note(f"made {i}")
            yield i

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        stream: ThreadStream[int] = ThreadStream(loop, 8, lockstep=True)
        job = loop.run_in_executor(None, stream.fill, items)
        got = []
        async for item in stream:
            note(f"got {item}")
            await asyncio.sleep(0)  # the consumer's own work, several loop turns
            await asyncio.sleep(0)
            got.append(item)
        await job
        return got

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]
    assert log == [e for i in range(5) for e in (f"made {i}", f"got {i}")]


def test_stop_releases_a_worker_waiting_in_lockstep() -> None:
    ended = threading.Event()

    def items() -> Iterator[int]:
        try:
            yield from range(1000)
        finally:
            ended.set()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stream: ThreadStream[int] = ThreadStream(loop, 8, lockstep=True)
        job = loop.run_in_executor(None, stream.fill, items)
        assert await stream.__anext__() == 0  # the worker now waits for the next ask
        stream.stop()  # the consumer goes away instead
        await asyncio.wait_for(job, 10)

    asyncio.run(main())
    assert ended.is_set()
