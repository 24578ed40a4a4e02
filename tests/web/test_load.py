"""Many chat sockets streaming at the same time: every socket gets every delta and one final."""

from __future__ import annotations

import asyncio
import time

from tests.e2e.harness import GatewayProcess
from tests.web.client import WsClient, run

SOCKETS = 200
CHUNKS = 20
SLOW_MS = 60  # between chunks: each answer streams for ~1.2 s, so the runs overlap


def test_200_sockets_stream_at_once_without_loss(gw: GatewayProcess) -> None:
    async def one(i: int, go: asyncio.Event, clients: list[WsClient]) -> tuple[float, float]:
        c = await WsClient.connect(gw.url, open_timeout=60)
        clients.append(c)
        await c.hello()
        await go.wait()
        sent = await c.call("chat.send", {"text": f"fault:chunks={CHUNKS} fault:slow={SLOW_MS} socket {i}"},
                            seconds=60)
        run_id = sent["runId"]
        await c.frame(lambda f: f.get("event") == "chat" and f["payload"]["state"] == "delta", seconds=60)
        first = time.monotonic()
        end = (await c.run_end(run_id, seconds=90))["payload"]
        last = time.monotonic()
        events = c.events(run_id)
        deltas = [e["payload"]["delta"] for e in events if e["payload"]["state"] == "delta"]
        assert end["state"] == "final", end
        assert len(deltas) == CHUNKS and end["message"]["content"] == "".join(deltas)
        assert f"socket {i}" in end["message"]["content"]
        assert [e["payload"]["state"] for e in events].count("final") == 1
        assert c.seqs() == list(range(1, len(c.seqs()) + 1))
        return first, last

    async def body() -> None:
        go = asyncio.Event()
        clients: list[WsClient] = []
        tasks = [asyncio.create_task(one(i, go, clients)) for i in range(SOCKETS)]
        try:
            async with asyncio.timeout(60):
                while len([c for c in clients if c.frames]) < SOCKETS:  # every socket has its hello
                    done = [t for t in tasks if t.done()]
                    if done:
                        done[0].result()  # surface a failed connect
                    await asyncio.sleep(0.01)
            go.set()
            spans = await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        # the runs really overlapped: at the moment the last one began streaming, most were still going
        latest_start = max(s for s, _ in spans)
        overlapping = sum(1 for _, e in spans if e >= latest_start)
        assert overlapping >= SOCKETS // 2, overlapping

    run(body(), timeout=150)
