"""codecs/sse.py: EventSplitter reads the same events from any bytes however they are cut (any
mix of LF and CRLF, stray CRs, blank runs), and event_data gives back what was framed."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from clawdbot.codecs.sse import EventSplitter, event_data
from tests.property.strategies import cuts

streams = st.lists(st.sampled_from([b"data: ", b"data:", b"event: x", b": ping", b"\n", b"\r\n", b"\r", b"\n\n",
                                    b"\r\n\r\n", b"x", b"{}", b" ", b"[DONE]", b"\xff", b"id: 1"]),
                   max_size=40).map(b"".join)
payload = st.binary(max_size=30).filter(lambda b: b"\n" not in b and b"\r" not in b)


def read(pieces: list[bytes]) -> tuple[list[bytes], bytes]:
    splitter = EventSplitter()
    events = [e for piece in pieces for e in splitter.feed(piece)]
    return events, splitter.tail()


@given(st.one_of(streams, st.binary(max_size=200)), st.data())
@example(b"data: a\r", None)  # CR now, LF in the next piece
@example(b"data: a\r\n\r\n\n\ndata: b\n\n", None)
def test_any_cut_reads_the_same_events(data: bytes, draw: st.DataObject | None) -> None:
    whole, tail = read([data])
    pieces = draw.draw(cuts(data)) if draw is not None else [data[:-1], data[-1:]]
    events, rest = read(pieces)
    assert events == whole
    assert rest.replace(b"\r\n", b"\n") == tail.replace(b"\r\n", b"\n")  # a CR may wait for its LF
    assert all(e and b"\n\n" not in e and b"\r\n" not in e for e in events)


@given(st.lists(st.lists(payload, min_size=1, max_size=3), max_size=6), st.booleans(), st.data())
def test_framed_payloads_come_back(payloads: list[list[bytes]], crlf: bool, draw: st.DataObject) -> None:
    end = b"\r\n" if crlf else b"\n"
    wire = b"".join(b"".join(b"data: " + line + end for line in lines) + end for lines in payloads)
    events, tail = read(draw.draw(cuts(wire)))
    assert tail == b""
    assert [event_data(e) for e in events] == [b"\n".join(lines) for lines in payloads]
