"""The upstream HTTP client against scripted servers on real loopback sockets (and, through the
transport seam, with no socket): chunked framing, interim responses, early closes, slow headers,
oversize heads and bodies, compressed bombs, the rule for sending a request twice, and what may
be written upstream."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time
from collections.abc import Awaitable, Callable

import pytest

from clawdbot.core.context import RequestContext
from clawdbot.core.errors import BadRequest, GatewayError, UpstreamError, UpstreamTimeout
from clawdbot.providers.http import UpstreamHTTP
from clawdbot.providers.http_client import MAX_HEAD, MAX_HEADERS
from tests.providers.scripted import MemoryOpener, Peer, Server, client, service

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 30))


async def fetch(http: UpstreamHTTP, method: str = "POST", path: str = "/x", **kw: object) -> bytes:
    """One request through the client; the whole body."""
    body = b"{}" if method == "POST" else None
    resp = await http.open(method, path, RequestContext("t"), body=body, **kw)  # type: ignore[arg-type]
    return await http.read_body(resp, time.monotonic() + 10)


def answer(*parts: bytes, close: bool = False) -> Callable[[Peer], Awaitable[None]]:
    """A script: for each request on the connection, write `parts` one by one (draining between
    them, so each is its own TCP segment); close after the first when `close`."""

    async def script(peer: Peer) -> None:
        while True:
            await peer.request()
            for p in parts:
                peer.write(p)
                await peer.drain()
            if close:
                peer.close()
                return

    return script


# -- framing -------------------------------------------------------------------------------------


def test_chunked_bodies_with_extensions_trailers_and_splits_at_every_boundary_are_read_whole() -> None:
    payload = b'{"answer": "forty-two"}'
    wire = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;name=value\r\n" + payload[:5] + b"\r\n"
            b"0012\r\n" + payload[5:] + b"\r\n"
            b"0\r\nX-Trailer: done\r\n\r\n")
    assert len(payload[5:]) == 0x12

    async def main() -> None:
        async with Server(answer(*[wire[i:i + 1] for i in range(len(wire))])) as srv:
            http = client(srv.url)
            try:
                assert await fetch(http) == payload
                assert await fetch(http) == payload  # read to its end: the connection was kept
                assert srv.connections == 1
            finally:
                await http.close()

    run(main)


def test_interim_1xx_responses_are_skipped() -> None:
    async def main() -> None:
        wire = (b"HTTP/1.1 100 Continue\r\n\r\n"
                b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + OK)
        async with Server(answer(wire)) as srv:
            http = client(srv.url)
            try:
                assert await fetch(http) == b"{}"
            finally:
                await http.close()

    run(main)


def test_a_body_cut_short_is_a_502_not_a_short_answer() -> None:
    async def main() -> None:
        cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\":"
        async with Server(answer(cut, close=True)) as srv:
            http = client(srv.url)
            try:
                with pytest.raises(UpstreamError, match="before the response was complete"):
                    await fetch(http)
            finally:
                await http.close()

    run(main)


def test_headers_that_never_come_are_a_first_byte_timeout() -> None:
    async def main() -> None:
        release = asyncio.Event()

        async def silent(peer: Peer) -> None:
            await peer.request()
            await release.wait()

        async with Server(silent) as srv:
            http = client(srv.url)
            try:
                with pytest.raises(UpstreamTimeout, match="first-byte"):
                    await fetch(http, timeout=0.3)
            finally:
                release.set()
                await http.close()

    run(main)


# -- bounds on what an upstream can make the gateway hold ----------------------------------------


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (MAX_HEAD + 1) + b"\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADERS + 1))
    + b"Content-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 " + b"O" * (MAX_HEAD + 1) + b"\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 100 Continue\r\n\r\n" * 17 + OK,
], ids=["header-value", "header-count", "status-line", "endless-1xx"])
def test_oversize_status_lines_and_headers_are_refused(head: bytes) -> None:
    async def main() -> None:
        async with Server(answer(head)) as srv:
            http = client(srv.url)
            try:
                with pytest.raises(UpstreamError, match="malformed HTTP response") as err:
                    await fetch(http)
                assert "exceed" in str(err.value) or "more than" in str(err.value)  # the reason, not only "malformed"
                assert http.connections()["open"] == 0  # the connection was dropped
            finally:
                await http.close()

    run(main)


def test_a_body_over_max_response_bytes_is_a_502_that_says_why() -> None:
    async def main() -> None:
        big = b"HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n" + b"x" * 300_000
        async with Server(answer(big)) as srv:
            http = client(srv.url, max_response_bytes=100_000)
            try:
                with pytest.raises(UpstreamError, match=r"too large.*exceeds 100000 bytes"):
                    await fetch(http)
                assert http.connections()["open"] == 0
                # the same body under a limit it fits is read whole
                http2 = client(srv.url, max_response_bytes=300_000)
                try:
                    assert len(await fetch(http2)) == 300_000
                finally:
                    await http2.close()
            finally:
                await http.close()

    run(main)


def test_a_gzip_bomb_stops_at_the_limit_and_honest_gzip_is_decoded() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000, compresslevel=9)
    assert len(bomb) < 100_000
    honest = gzip.compress(b'{"ok": true}')

    def gz(data: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data)

    async def main() -> None:
        async with Server(answer(gz(bomb))) as srv, Server(answer(gz(honest))) as ok_srv:
            http = client(srv.url, max_response_bytes=1_000_000)
            fine = client(ok_srv.url)
            try:
                with pytest.raises(UpstreamError, match="exceeds 1000000 bytes"):
                    await fetch(http)
                assert await fetch(fine) == b'{"ok": true}'
            finally:
                await http.close()
                await fine.close()

    run(main)


def test_a_corrupt_gzip_body_is_a_clear_502() -> None:
    async def main() -> None:
        junk = b"\x1f\x8b\x08\x00not really gzip at all"
        wire = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(junk), junk)
        async with Server(answer(wire)) as srv:
            http = client(srv.url)
            try:
                with pytest.raises(UpstreamError, match="compressed body is corrupt"):
                    await fetch(http)
            finally:
                await http.close()

    run(main)


@pytest.mark.parametrize(("ctype", "unit"), [(b"application/x-ndjson", b"x" * 50_000),
                                             (b"text/event-stream", b"data: " + b"x" * 49_993 + b"\n")])
def test_a_stream_line_or_event_over_the_limit_is_refused_not_buffered(ctype: bytes, unit: bytes) -> None:
    """Ten 50 KB pieces with no end of line (NDJSON) or of event (SSE: lines, never a blank one)."""

    async def main() -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % ctype
        line = unit
        chunks = [b"%x\r\n%s\r\n" % (len(line), line)] * 10  # 500 KB and never a newline

        async def script(peer: Peer) -> None:
            await peer.request()
            peer.write(head)
            for c in chunks:
                peer.write(c)
                await peer.drain()
            peer.write(b"0\r\n\r\n")
            await peer.drain()

        async with Server(script) as srv:
            http = client(srv.url, max_response_bytes=200_000)
            try:
                resp = await http.open("POST", "/x", RequestContext("t"), body=b"{}")
                with pytest.raises(UpstreamError, match="exceeds 200000 bytes"):
                    async for _ in http.iter_chunks(resp, time.monotonic() + 10):
                        pass
            finally:
                await http.close()

    run(main)


# -- sending twice: only what provably never reached the server -----------------------------------


def test_a_post_the_server_read_is_never_sent_again() -> None:
    """The server reads the second POST and closes without answering: the model may be generating.
    The client gets a 502 and the server saw that POST once."""

    async def script(peer: Peer) -> None:
        await peer.request()
        peer.write(OK)
        await peer.drain()
        await peer.request()
        peer.close()

    async def main() -> None:
        async with Server(script) as srv:
            http = client(srv.url)
            try:
                assert await fetch(http) == b"{}"
                with pytest.raises(UpstreamError, match="closed the connection"):
                    await fetch(http)
                assert len(srv.requests) == 2  # once each: the second was not re-sent
                assert srv.connections == 1
            finally:
                await http.close()

    run(main)


def test_a_get_on_a_reused_connection_is_sent_again_on_a_fresh_one() -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        peer.write(OK)
        await peer.drain()
        if peer.index == 1:  # the first connection: read the second request, then drop it
            await peer.request()
            peer.close()
            return
        while True:
            await peer.request()
            peer.write(OK)
            await peer.drain()

    async def main() -> None:
        async with Server(script) as srv:
            http = client(srv.url)
            try:
                assert await fetch(http, "GET") == b"{}"
                assert await fetch(http, "GET") == b"{}"
                assert srv.connections == 2
                assert len(srv.requests) == 3
            finally:
                await http.close()

    run(main)


def test_an_idle_connection_the_server_closed_is_not_written_to() -> None:
    """The keep-alive race: the server closes an idle connection and its FIN is waiting in the
    socket, not yet seen by the event loop, when the next request takes the connection. The check
    before reuse finds it, so the POST goes out once, on a fresh connection, and succeeds."""
    first_closed = threading.Event()
    seen: list[tuple[int, bytes]] = []
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    port = lsock.getsockname()[1]

    def serve() -> None:
        for index in (1, 2):
            conn, _ = lsock.accept()
            with conn:
                conn.settimeout(10)
                data = b""
                while not data.endswith(b"{}"):
                    data += conn.recv(65536)
                seen.append((index, data))
                conn.sendall(OK)
                if index == 1:
                    conn.shutdown(socket.SHUT_WR)
            if index == 1:
                first_closed.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    async def main() -> None:
        http = client(f"http://127.0.0.1:{port}")
        try:
            assert await fetch(http) == b"{}"
            # Block the loop until the server has closed: its FIN reaches our socket while the
            # loop cannot read it, so the pool still holds the connection as idle.
            assert first_closed.wait(10)
            assert http.connections()["idle"] == 1
            assert await fetch(http) == b"{}"
        finally:
            await http.close()

    try:
        run(main)
    finally:
        lsock.close()
        thread.join(10)
    assert [i for i, _ in seen] == [1, 2]


def test_a_write_that_fails_at_once_is_sent_again_through_the_transport_seam() -> None:
    """A scripted connection that is reset as the request is written (no byte left): the request
    is sent on a fresh connection, once. No socket: the client's one-method transport seam."""

    async def script(peer: Peer) -> None:
        while True:
            await peer.request()
            peer.write(OK)
            await peer.drain()

    class ResetOnWrite(MemoryOpener):
        async def open(self, factory):  # type: ignore[no-untyped-def]
            conn = await super().open(factory)
            if self.connections == 1:
                transport = conn.transport
                assert transport is not None
                transport.write = lambda data: transport.close()  # type: ignore[method-assign]
            return conn

    async def main() -> None:
        opener = ResetOnWrite(script)
        http = UpstreamHTTP(service("http://scripted.invalid"), opener=opener)
        try:
            assert await fetch(http) == b"{}"
            assert opener.connections == 2
            assert len(opener.requests) == 1
        finally:
            await http.close()

    run(main)


def test_a_big_body_that_ends_while_reading_is_paused_leaves_a_reusable_connection() -> None:
    """A body past the pause mark (HIGH_WATER) whose end comes in the same read: the response is
    complete while reading is paused. Its connection must go back to the pool reading again, or
    the next request on it waits for an answer it cannot see (found by schemathesis: a 504)."""
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 400000\r\n\r\n" + b"x" * 400_000

    async def script(peer: Peer) -> None:
        while True:
            await peer.request()
            peer.write(big)  # one data_received on the client's side

    async def main() -> None:
        opener = MemoryOpener(script)
        http = UpstreamHTTP(service("http://scripted.invalid"), opener=opener)
        try:
            assert len(await fetch(http)) == 400_000
            assert len(await fetch(http, timeout=2)) == 400_000
            assert opener.connections == 1
        finally:
            await http.close()

    run(main)


def test_the_transport_seam_carries_a_scripted_stream_through_the_real_parser() -> None:
    events = [b'data: {"n": %d}\n\n' % i for i in range(5)] + [b"data: [DONE]\n\n"]

    async def script(peer: Peer) -> None:
        req = await peer.request()
        assert req.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        peer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for e in events:
            peer.write(b"%x\r\n%s\r\n" % (len(e), e))
            await peer.drain()
        peer.write(b"0\r\n\r\n")

    async def main() -> None:
        opener = MemoryOpener(script)
        http = UpstreamHTTP(service("http://scripted.invalid/v1"), opener=opener)
        try:
            resp = await http.open("POST", "/chat/completions", RequestContext("t"), body=b"{}")
            got = b"".join([c async for c in http.iter_chunks(resp, time.monotonic() + 10)])
            assert got == b"".join(events)
        finally:
            await http.close()

    run(main)


# -- what may be written upstream ------------------------------------------------------------------


@pytest.mark.parametrize(("path", "headers"), [
    ("/x", {"X-Beta": "a\r\nX-Injected: 1"}),
    ("/x", {"X-Beta": "a\nb"}),
    ("/x", {"X-Beta": "nul\x00"}),
    ("/x", {"Bad Name": "v"}),
    ("/x", {"X-Beta:": "v"}),
    ("/x HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /", None),
    ("/mödel", None),
    ("/a b", None),
])
def test_nothing_that_would_split_the_request_is_sent(path: str, headers: dict[str, str] | None) -> None:
    async def main() -> None:
        async with Server(answer(OK)) as srv:
            http = client(srv.url)
            try:
                with pytest.raises(BadRequest, match="cannot send this request"):
                    await fetch(http, path=path, headers=headers)
                assert srv.requests == []
            finally:
                await http.close()

    run(main)


def test_errors_name_the_service_and_never_carry_a_traceback() -> None:
    async def main() -> None:
        async with Server(answer(b"NOT HTTP AT ALL\r\n\r\n")) as srv:
            http = client(srv.url)
            try:
                with pytest.raises(GatewayError) as err:
                    await fetch(http)
                assert err.value.status == 502
                assert "'svc'" in str(err.value) and "Traceback" not in str(err.value)
            finally:
                await http.close()

    run(main)
