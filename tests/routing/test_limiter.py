from __future__ import annotations

import asyncio

import pytest

from clawdbot.core.errors import Overloaded
from clawdbot.routing.limiter import Limiter


def test_slots_queue_and_hand_over_in_order() -> None:
    async def main() -> None:
        lim = Limiter("s", 1, max_queue=2, timeout=5)
        assert lim.try_acquire() and not lim.try_acquire()
        order: list[int] = []

        async def wait(i: int) -> None:
            await lim.acquire()
            order.append(i)

        tasks = [asyncio.create_task(wait(i)) for i in range(2)]
        await asyncio.sleep(0)
        assert lim.waiting == 2
        with pytest.raises(Overloaded) as info:  # the queue is full
            await lim.acquire()
        assert info.value.headers["Retry-After"] == "1" and info.value.status == 503
        lim.release()
        await tasks[0]
        lim.release()
        await tasks[1]
        lim.release()
        assert order == [0, 1] and lim.inflight == 0 and lim.waiting == 0

    asyncio.run(main())


def test_wait_times_out_and_cancelled_waiters_leave_the_queue() -> None:
    async def main() -> None:
        lim = Limiter("s", 1, max_queue=4, timeout=0.05)
        assert lim.try_acquire()
        with pytest.raises(Overloaded):
            await lim.acquire()
        assert lim.waiting == 0
        task = asyncio.create_task(lim.acquire())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert lim.waiting == 0
        lim.release()
        assert lim.inflight == 0 and lim.try_acquire()

    asyncio.run(main())
