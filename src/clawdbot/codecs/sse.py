"""Server-sent events framing: splitting a byte stream into events without copying more than the
unfinished tail."""

from __future__ import annotations


class EventSplitter:
    """Feed raw bytes; get back complete events (each without its blank-line terminator)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        if buf.find(b"\r") >= 0:  # (not `in`: see providers/http.py iter_chunks)
            # A line ends in CRLF, LF or a lone CR (the SSE spec): all become LF, once. A CR at the end
            # may be half of a CRLF whose LF is in the next chunk: it waits for it. (Replacing only
            # CRLF made "\r\r\n" a new CRLF the next feed replaced again: events then depended on
            # where the chunks were cut.)
            held = buf.endswith(b"\r")
            buf = buf[:-1] if held else buf
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if held else b"")
        events = buf.split(b"\n\n")
        self._buf = events.pop()
        return [e for e in events if e]

    def tail(self) -> bytes:
        return self._buf


def event_data(event: bytes) -> bytes | None:
    """The joined `data:` payload of one event (None when it has none, e.g. a comment)."""
    if event.startswith(b"data: ") and event.find(b"\n") < 0:
        return event[6:]
    parts = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            parts.append(line[6:] if line[5:6] == b" " else line[5:])
    return b"\n".join(parts) if parts else None
