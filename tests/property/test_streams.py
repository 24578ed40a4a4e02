"""The stream readers fed the recorded captures of tests/fixtures/ cut at every byte boundary (and
into many random pieces, and with CRLF line ends) read the same events as from the bytes whole:

- OpenAI SSE: providers/openai_http.py's decode_sse (EventSplitter, event_data, decode_stream_data)
  and the fast path's probe of each passed-through event (api/relay.py);
- Anthropic SSE: the provider's loop (EventSplitter, event_data, anthropic_upstream.StreamDecoder)
  and the bytes-through reader (anthropic_raw.EventReader, api/messages_raw.py);
- Ollama NDJSON: providers/http.py's UpstreamHTTP.iter_lines and decode_stream_line.

CRLF line ends read as LF do (whole here; cut at random, with CRLF, in test_any_cuts_read_the_same).

The HTTP body arrives through `Replay`, a stand-in for the transport's response (its headers,
read_chunk and release: what iter_chunks reads): the pieces it hands over are the cuts under test.
No project code is replaced."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clawdbot.codecs import anthropic_raw as ar
from clawdbot.codecs import anthropic_upstream as au
from clawdbot.codecs import ollama as ol
from clawdbot.codecs import openai as oa
from clawdbot.codecs.sse import EventSplitter, event_data
from clawdbot.config.schema import Service
from clawdbot.core.errors import UpstreamError
from clawdbot.core.types import ChatChunk
from clawdbot.providers.http import UpstreamHTTP
from clawdbot.providers.http_client import Headers
from clawdbot.providers.openai_http import decode_sse
from tests.property.strategies import cuts

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
OPENAI = ["openai/chat_stream.sse", "openai/chat_stream_usage.sse", "openai/chat_tools_stream.sse",
          "llamacpp/chat_stream.sse", *(f"conformance/openai/{p.name}" for p in
                                       sorted((FIXTURES / "conformance/openai").glob("*.sse")))]
ANTHROPIC = ["anthropic/stream_tool_use.sse", *(f"conformance/anthropic/{p.name}" for p in
                                                sorted((FIXTURES / "conformance/anthropic").glob("*.sse")))]
OLLAMA = [*(f"ollama/{p.name}" for p in sorted((FIXTURES / "ollama").glob("*.ndjson"))),
          *(f"conformance/ollama/{p.name}" for p in sorted((FIXTURES / "conformance/ollama").glob("*.ndjson")))]
Events = list[Any]


def capture(name: str, crlf: bool = False) -> bytes:
    data = (FIXTURES / name).read_bytes()
    return data.replace(b"\n", b"\r\n") if crlf else data


def all_cuts(data: bytes) -> Iterator[list[bytes]]:
    """`data` whole, in two at every byte boundary, and one byte at a time."""
    yield [data]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]
    yield [data[i:i + 1] for i in range(len(data))]


class Replay:
    """A response whose body arrives in the given pieces (providers/http_client.Response's reading
    side: its headers, read_chunk and release)."""

    def __init__(self, pieces: list[bytes], content_type: bytes = b"application/x-ndjson") -> None:
        self.headers = Headers([(b"content-type", content_type)])
        self.pieces = iter(pieces)
        self.released = False

    async def read_chunk(self, loop_deadline: float) -> bytes:
        return next(self.pieces, b"")

    def release(self) -> None:
        self.released = True


def failure(exc: UpstreamError) -> tuple[str, str]:
    return ("error", exc.message)


def upstream() -> UpstreamHTTP:
    return UpstreamHTTP(Service(name="s", type="openai", endpoint="http://127.0.0.1:9"))


async def openai_read(pieces: list[bytes]) -> Events:
    body = upstream().iter_chunks(Replay(pieces, b"text/event-stream"), time.monotonic() + 60)  # type: ignore[arg-type]
    out: Events = []
    try:
        async for chunk in decode_sse(body, "s"):
            out.append(chunk)
    except UpstreamError as exc:
        out.append(failure(exc))
    splitter = EventSplitter()  # the fast path's reading of the same bytes, event by event
    for piece in pieces:
        for event in splitter.feed(piece):
            data = event_data(event)
            if data is None or data == b"[DONE]":
                continue
            try:
                probe = oa.probe_stream_data(data, "s")
            except UpstreamError as exc:
                out.append(failure(exc))
            else:
                out.append((probe.output(), probe.usage))
    return out


def anthropic_read(pieces: list[bytes]) -> Events:
    splitter, dec, reader = EventSplitter(), au.StreamDecoder(), ar.EventReader()
    out: Events = []
    for piece in pieces:
        for event in splitter.feed(piece):
            data = event_data(event)
            if data is None:
                continue
            out.append(reader.read(data, "s"))
            try:
                out.append(dec.decode(data))
            except UpstreamError as exc:
                out.append(failure(exc))
    return [*out, reader.prompt, reader.output, reader.error, dec.done, splitter.tail()]


async def ollama_read(pieces: list[bytes]) -> Events:
    replay = Replay(pieces)
    out: Events = []
    async for line in upstream().iter_lines(replay, time.monotonic() + 60):  # type: ignore[arg-type]
        try:
            chunk = ol.decode_stream_line(line)
        except UpstreamError as exc:
            out.append(failure(exc))
            continue
        for d in chunk.tool_calls or () if chunk is not None else ():
            d.id = None  # Ollama sends none: each read makes one up
        out.append(chunk)
    assert replay.released
    return out


def same_everywhere(read: Callable[[list[bytes]], Events], data: bytes) -> None:
    whole = read([data])
    assert whole
    for pieces in all_cuts(data):
        assert read(pieces) == whole, [len(p) for p in pieces]


class OnOneLoop:
    """An async reader run on one loop for all the cuts (an asyncio.run per cut costs more than the reading)."""

    def __init__(self, read: Callable[[list[bytes]], Coroutine[Any, Any, Events]]) -> None:
        self.read = read
        self.loop = asyncio.new_event_loop()

    def __call__(self, pieces: list[bytes]) -> Events:
        return self.loop.run_until_complete(self.read(pieces))


@pytest.fixture
def openai_reader() -> Iterator[OnOneLoop]:
    reader = OnOneLoop(openai_read)
    yield reader
    reader.loop.close()


@pytest.fixture
def ollama_reader() -> Iterator[OnOneLoop]:
    reader = OnOneLoop(ollama_read)
    yield reader
    reader.loop.close()


@pytest.mark.parametrize("name", OPENAI)
def test_openai_sse_reads_the_same_at_every_cut(name: str, openai_reader: OnOneLoop) -> None:
    same_everywhere(openai_reader, capture(name))
    assert openai_reader([capture(name, crlf=True)]) == openai_reader([capture(name)])  # CRLF or LF: the same


@pytest.mark.parametrize("name", ANTHROPIC)
def test_anthropic_sse_reads_the_same_at_every_cut(name: str) -> None:
    same_everywhere(anthropic_read, capture(name))
    assert anthropic_read([capture(name, crlf=True)]) == anthropic_read([capture(name)])


@pytest.mark.parametrize("name", OLLAMA)
def test_ollama_ndjson_reads_the_same_at_every_cut(name: str, ollama_reader: OnOneLoop) -> None:
    same_everywhere(ollama_reader, capture(name))
    assert ollama_reader([capture(name, crlf=True)]) == ollama_reader([capture(name)])


def test_the_captures_say_what_they_should() -> None:
    """The readers above compare runs with each other: here, that the captures are read as streams
    (events, a finish, text), so equal results are not equally empty ones."""
    for name in OPENAI:
        events = asyncio.run(openai_read([capture(name)]))
        assert any(isinstance(e, ChatChunk) and (e.content or e.tool_calls) for e in events), name
    for name in ANTHROPIC:
        events = anthropic_read([capture(name)])
        assert events.count(ar.OUTPUT) >= 1 and (events[-2] or events[-3]), name  # done, or an error said
    for name in OLLAMA:
        events = asyncio.run(ollama_read([capture(name)]))
        assert any(isinstance(e, ChatChunk) and (e.content or e.tool_calls) for e in events), name


readers: dict[str, tuple[list[str], Callable[[list[bytes]], Any], bool]] = {
    "openai": (OPENAI, openai_read, True), "anthropic": (ANTHROPIC, anthropic_read, False),
    "ollama": (OLLAMA, ollama_read, True),
}


@given(st.sampled_from(sorted(readers)), st.data(), st.booleans())
def test_any_cuts_read_the_same(dialect: str, data: st.DataObject, crlf: bool) -> None:
    names, read, is_async = readers[dialect]
    body = capture(data.draw(st.sampled_from(names)), crlf)
    pieces = data.draw(cuts(body, most=64))

    def run(p: list[bytes]) -> Events:
        return asyncio.run(read(p)) if is_async else read(p)

    assert run(pieces) == run([body])


def test_a_stream_flushed_line_by_line_is_held_one_event_at_a_time() -> None:
    """max_response_bytes bounds what a reader must hold at once (one SSE event, one NDJSON line),
    not the stream: the same bytes in pieces of a line each must pass where they pass whole."""
    data = capture("openai/chat_stream.sse")
    limit = max(map(len, data.split(b"\n\n"))) + 8

    async def read(pieces: list[bytes]) -> int:
        http = UpstreamHTTP(Service(name="s", type="openai", endpoint="http://127.0.0.1:9",
                                    max_response_bytes=limit))
        chunks = http.iter_chunks(Replay(pieces, b"text/event-stream"), time.monotonic() + 60)  # type: ignore[arg-type]
        return sum([len(c) async for c in chunks])

    assert asyncio.run(read([data])) == len(data)
    lines = [line + b"\n" for line in data.split(b"\n")[:-1]]  # "data: {...}\n", then "\n"
    assert asyncio.run(read(lines)) == len(data)
