"""The HTTP client of a Streamable HTTP upstream, whose answers are bounded while they are read.

The SDK reads a JSON answer whole (`response.aread()`) before it parses it, so the bound sits
under it: a response hook wraps every answer's byte stream in one that counts and stops at the
cap, whichever transport (or proxy mount) fetched it. The SDK turns the error into a JSON-RPC
error of the call (upstream.py maps it to `result_too_large`), and the connection is dropped
with the rest of the body unread. Server-sent events are bounded per event by the SDK itself
(`max_sse_event_size`, the same cap). Compressed answers are refused: a few kilobytes of gzip
can inflate past any cap after the raw bytes were counted, so requests ask for `identity`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx2

TOO_LARGE = "result_too_large"  # in the error the SDK passes on: how upstream.py recognises it


def read_cap(max_result_bytes: int) -> int:
    """Bytes of one answer read (as for a stdio line): a result twice the limit still arrives
    (and is then refused with its size), anything larger is cut while it is read."""
    return 2 * max_result_bytes + 64 * 1024


class AnswerRefused(httpx2.StreamError):
    """Raised from the body's stream: the SDK catches StreamError and answers the call with it."""


class _Capped(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, cap: int, refused: str | None) -> None:
        self.inner, self.cap, self.refused = inner, cap, refused

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.refused is not None:
            raise AnswerRefused(self.refused)
        seen = 0
        async for chunk in self.inner:
            seen += len(chunk)
            if seen > self.cap:
                raise AnswerRefused(f"{TOO_LARGE}: the answer exceeds {self.cap} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


def _refusal(headers: httpx2.Headers, cap: int) -> str | None:
    """Why an answer is refused before one byte of its body is read, if it is."""
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        return f"a compressed answer ({encoding[:40]}) is refused: it could not be bounded"
    length = headers.get("content-length", "")
    if length.isdigit() and int(length) > cap:
        return f"{TOO_LARGE}: the answer is {length} bytes, over {cap}"
    return None


class _QuietRefusals(logging.Filter):
    """The SDK logs the error with its traceback (logger.exception) before it answers the call with
    it; a refusal is expected, and the call's own access-log line says `too_large`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], AnswerRefused))


def quiet_sdk_refusals() -> None:
    """Idempotent: one filter on the SDK's Streamable HTTP client logger."""
    sdk = logging.getLogger("mcp.client.streamable_http")
    if not any(isinstance(f, _QuietRefusals) for f in sdk.filters):
        sdk.addFilter(_QuietRefusals())


def bounded_client(headers: dict[str, str], timeout: httpx2.Timeout, cap: int,
                   transport: httpx2.AsyncBaseTransport | None = None) -> httpx2.AsyncClient:
    quiet_sdk_refusals()

    async def bound(response: httpx2.Response) -> None:
        if response.headers.get("content-type", "").lower().startswith("text/event-stream"):
            return  # a stream of events, each bounded by the SDK (max_sse_event_size)
        stream = response.stream
        if isinstance(stream, httpx2.AsyncByteStream):  # always, for an AsyncClient's response
            response.stream = _Capped(stream, cap, _refusal(response.headers, cap))

    return httpx2.AsyncClient(headers={**headers, "Accept-Encoding": "identity"}, timeout=timeout,
                              event_hooks={"response": [bound]}, transport=transport)
