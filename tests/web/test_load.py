"""Many chat sockets streaming at the same time: every socket gets every delta and one final. The
upstream holds every stream open after its first chunk until all of them are open at once (its
`fault:gate`), so the runs provably overlap whatever the machine's speed."""

from __future__ import annotations

import asyncio
import time

from tests.e2e.harness import GatewayProcess
from tests.upstreams.openai_server import OpenAIUpstream
from tests.web.client import WsClient, run

SOCKETS = 200
CHUNKS = 20


def test_200_sockets_stream_at_once_without_loss(gw: GatewayProcess, upstream: OpenAIUpstream) -> None:
    async def one(i: int, go: asyncio.Event, clients: list[WsClient]) -> tuple[float, float]:
        c = await WsClient.connect(gw.url, open_timeout=60)
        clients.append(c)
        await c.hello()
        await go.wait()
        sent = await c.call("chat.send", {"text": f"fault:chunks={CHUNKS} fault:gate socket {i}"},
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
            upstream.reset()
            go.set()
            async with asyncio.timeout(90):  # every stream open at the upstream, held at its gate
                while upstream.in_flight < SOCKETS:
                    done = [t for t in tasks if t.done()]
                    if done:
                        done[0].result()  # surface a failed run
                    await asyncio.sleep(0.01)
            upstream.set_gate(True)
            spans = await asyncio.gather(*tasks)
        finally:
            upstream.set_gate(False)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        assert len(spans) == SOCKETS and upstream.peak_in_flight >= SOCKETS  # all of them at once

    run(body(), timeout=150)
