"""A Streamable HTTP upstream's answer bounded while it is read (mcp/bounded.py): through a real
httpx2 client and a transport double that streams a body without end."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import httpx2
import pytest

from clawdbot.mcp.bounded import TOO_LARGE, AnswerRefused, bounded_client, read_cap

CHUNK = 64 * 1024
CAP = 10 * CHUNK


class Once(httpx2.AsyncByteStream):
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data


class Endless(httpx2.AsyncByteStream):
    """A body of up to `chunks` chunks (far more than any cap), counting what was pulled."""

    def __init__(self, chunks: int = 10_000) -> None:
        self.chunks, self.pulled, self.closed = chunks, 0, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield b"x" * CHUNK

    async def aclose(self) -> None:
        self.closed = True


def client(response: httpx2.Response) -> tuple[httpx2.AsyncClient, list[httpx2.Request]]:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return response

    return bounded_client({"X-Token": "t"}, httpx2.Timeout(5), CAP, httpx2.MockTransport(handler)), seen


async def post(c: httpx2.AsyncClient) -> bytes:
    async with c, c.stream("POST", "http://peer/mcp", json={}) as r:
        return await r.aread()


def test_an_endless_answer_is_cut_at_the_cap_while_it_is_read() -> None:
    body = Endless()
    c, seen = client(httpx2.Response(200, headers={"Content-Type": "application/json"}, stream=body))
    with pytest.raises(AnswerRefused, match=f"^{TOO_LARGE}: the answer exceeds {CAP} bytes$"):
        asyncio.run(post(c))
    assert body.pulled == CAP // CHUNK + 1  # read up to the cap, never the 640 MB behind it
    assert body.closed
    assert seen[0].headers["Accept-Encoding"] == "identity" and seen[0].headers["X-Token"] == "t"


def test_an_answer_within_the_cap_is_read_whole() -> None:
    body = Endless(chunks=CAP // CHUNK)
    c, _ = client(httpx2.Response(200, headers={"Content-Type": "application/json"}, stream=body))
    assert len(asyncio.run(post(c))) == CAP


def test_a_declared_length_over_the_cap_is_refused_unread() -> None:
    body = Endless()
    c, _ = client(httpx2.Response(200, headers={"Content-Type": "application/json",
                                                "Content-Length": str(CAP + 1)}, stream=body))
    with pytest.raises(AnswerRefused, match=f"^{TOO_LARGE}: the answer is {CAP + 1} bytes"):
        asyncio.run(post(c))
    assert body.pulled == 0


def test_a_compressed_answer_is_refused() -> None:
    bomb = gzip.compress(b"x" * (100 * CAP))  # a few kB that would inflate past the cap
    assert len(bomb) < CAP
    c, _ = client(httpx2.Response(200, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
                                  stream=Once(bomb)))
    with pytest.raises(AnswerRefused, match="compressed answer"):
        asyncio.run(post(c))


def test_the_cap_lets_a_result_of_twice_the_limit_arrive() -> None:
    assert read_cap(100_000) == 2 * 100_000 + 64 * 1024
