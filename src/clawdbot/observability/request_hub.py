"""The live stream of request records (GET /admin/api/requests/stream, `clawdbot tail`).

Bounded both ways: at most `max_subscribers` streams, each with a queue of `queue_size` records.
Publishing never waits: a reader that has fallen `queue_size` records behind is dropped (its
stream ends with a `dropped` event), so a slow reader never makes the gateway buffer without limit
or slows a request. With no subscriber, publishing is one truth test on the request path."""

from __future__ import annotations

import asyncio

from clawdbot.state.request_log_base import RequestQuery, RequestRecord, matches


class TooManySubscribers(Exception):
    pass


class Subscriber:
    __slots__ = ("dropped", "query", "queue")

    def __init__(self, query: RequestQuery, size: int) -> None:
        self.query = query
        # None: the stream is over (dropped, the gateway stopping, the client gone)
        self.queue: asyncio.Queue[RequestRecord | None] = asyncio.Queue(size + 1)  # +1: room for the end
        self.dropped = False

    def end(self) -> None:
        q = self.queue
        while not q.empty():  # what a dropped reader did not read is freed at once
            q.get_nowait()
        q.put_nowait(None)


class Hub:
    def __init__(self, max_subscribers: int, queue_size: int) -> None:
        self.max_subscribers = max_subscribers
        self.queue_size = queue_size
        self.subscribers: list[Subscriber] = []
        self.dropped = 0  # subscribers dropped for falling behind (a counter for /metrics)

    def subscribe(self, query: RequestQuery) -> Subscriber:
        if len(self.subscribers) >= self.max_subscribers:
            raise TooManySubscribers(f"{self.max_subscribers} live request streams are open already "
                                     f"(request_log.max_subscribers)")
        sub = Subscriber(query, self.queue_size)
        self.subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub in self.subscribers:
            self.subscribers.remove(sub)

    def publish(self, rec: RequestRecord) -> None:
        for sub in self.subscribers:
            if not matches(rec, sub.query):
                continue
            if sub.queue.qsize() >= self.queue_size:
                sub.dropped = True
                self.dropped += 1
                sub.end()
                continue
            sub.queue.put_nowait(rec)
        if any(s.dropped for s in self.subscribers):
            self.subscribers = [s for s in self.subscribers if not s.dropped]

    def close(self) -> None:
        """The gateway is stopping: every stream ends."""
        for sub in self.subscribers:
            sub.end()
        self.subscribers = []
