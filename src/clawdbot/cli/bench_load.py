"""`clawdbot bench`'s load: N workers per target, each a loop of OpenAI chat completions over its
own keep-alive connection, bounded by the phase's end and the request cap.

The client is the gateway's own upstream client (providers/http_pool.py: asyncio, httptools'
parser, Content-Length and chunked bodies, keep-alive), so the bench needs no HTTP library
beyond the runtime's, and costs little CPU next to the gateway it measures on the same machine.
Bodies are read chunk by chunk with a size bound; every failure becomes a counted error."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgspec

from clawdbot import __version__
from clawdbot.cli.bench_stats import Outcome, Samples
from clawdbot.providers.http_client import ConnectError, ConnectTimeout, PoolExhausted, Response, TransportError
from clawdbot.providers.http_pool import Pool

MAX_BODY = 8 * 1024 * 1024  # one answer, or one whole stream
BACKOFF = 0.05  # after a failed connect: a dead target is not a busy loop
GIVE_UP = 200  # failures before any success: a wrong key or model is not worth a whole run of them


class BenchError(Exception):
    """A request that did not give an answer (a refusal, a malformed or oversized body)."""


FAILURES = (BenchError, TransportError, TimeoutError, OSError, msgspec.DecodeError, ValueError)


def base_url(url: str) -> str:
    """The server's root: `http://h:p`, `http://h:p/v1` and `http://h:p/prefix/v1/` all give the
    one /v1/... is appended to. Raises ValueError for anything but an http(s) URL."""
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    path = u.path.rstrip("/")
    path = path.removesuffix("/v1")
    return f"{u.scheme}://{u.netloc}{path}"


@dataclass(slots=True)
class Plan:
    concurrency: int
    duration: float
    warmup: float
    round_s: float
    max_requests: int
    timeout: float


@dataclass(slots=True)
class Status:
    """Where the run is, for the progress display: planned and finished seconds, the phase now."""

    total_s: float = 0.0
    done_s: float = 0.0
    label: str = "starting"
    phase_start: float = 0.0
    phase_len: float = 0.0
    samples: Samples = field(default_factory=Samples)

    def completed(self, now: float) -> float:
        return self.done_s + min(max(now - self.phase_start, 0.0), self.phase_len) if self.phase_len else self.done_s


class Target:
    """One server under load: its connection pool and the request it is sent, prebuilt."""

    def __init__(self, name: str, url: str, key: str | None, concurrency: int, timeout: float) -> None:
        self.name = name
        self.url = base_url(url)
        self.key = key
        self.timeout = timeout
        self.model = ""
        self.body = b""
        self.head = b""
        self.stream = False
        self.pool = Pool(self.url, max_idle=concurrency, max_open=concurrency, connect_timeout=min(timeout, 10.0),
                         max_queue=concurrency * 2, queue_timeout=timeout)

    def _head(self, method: str, path: str, body_len: int | None, accept: str) -> bytes:
        lines = [f"{method} {self.pool.prefix}{path} HTTP/1.1", f"Host: {self.pool.authority}",
                 f"User-Agent: clawdbot-bench/{__version__}", f"Accept: {accept}", "Accept-Encoding: identity"]
        if self.key:
            lines.append(f"Authorization: Bearer {self.key}")
        if body_len is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {body_len}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def prepare(self, model: str, prompt: str, max_tokens: int, stream: bool) -> None:
        self.model = model
        req: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}],
                               "max_tokens": max_tokens}
        if stream:
            req |= {"stream": True, "stream_options": {"include_usage": True}}
        self.body = msgspec.json.encode(req)
        self.head = self._head("POST", "/v1/chat/completions", len(self.body),
                               "text/event-stream" if stream else "application/json")
        self.stream = stream

    async def first_model(self) -> str:
        """The first id of GET /v1/models."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        resp = await self.pool.request(self._head("GET", "/v1/models", None, "application/json"), None,
                                       self.timeout, self.timeout)
        data = await _read(resp, deadline)
        if resp.status != 200:
            raise BenchError(f"GET /v1/models: {_refusal(resp.status, data)}")
        listing = msgspec.json.decode(data)
        entries = listing.get("data") if isinstance(listing, dict) else None
        ids = [m.get("id") for m in entries or [] if isinstance(m, dict)] if isinstance(entries, list) else []
        if not ids or not isinstance(ids[0], str):
            raise BenchError("GET /v1/models named no model: give one with --model")
        return ids[0]

    async def once(self) -> Outcome:
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        deadline = loop.time() + self.timeout
        resp = await self.pool.request(self.head, self.body, self.timeout, self.timeout)
        if resp.status != 200:
            raise BenchError(_refusal(resp.status, await _read(resp, deadline)))
        if self.stream:
            return await _stream(resp, t0, deadline)
        data = await _read(resp, deadline)
        latency = (time.perf_counter() - t0) * 1000.0
        answer = msgspec.json.decode(data)
        if not isinstance(answer, dict) or not answer.get("choices"):
            raise BenchError(f"an answer without choices: {data[:200]!r}")
        usage = answer.get("usage") or {}
        return Outcome(latency, int(usage.get("completion_tokens") or 0))

    def close(self) -> None:
        self.pool.close()


async def _read(resp: Response, deadline: float) -> bytes:
    """The whole body, at most MAX_BODY bytes; the connection goes back to the pool when complete."""
    parts: list[bytes] = []
    size = 0
    try:
        while chunk := await resp.read_chunk(deadline):
            size += len(chunk)
            if size > MAX_BODY:
                raise BenchError(f"response body over {MAX_BODY} bytes")
            parts.append(chunk)
    finally:
        resp.release()
    return b"".join(parts)


async def _stream(resp: Response, t0: float, deadline: float) -> Outcome:
    """Reads Server-Sent Events to the end of the response: stamps each content delta as its bytes
    arrive; completion tokens from the usage chunk, else the content chunks counted."""
    stamps: list[float] = []
    usage_tokens: int | None = None
    buf = b""
    size = 0
    try:
        while chunk := await resp.read_chunk(deadline):
            now = time.perf_counter()
            size += len(chunk)
            if size > MAX_BODY:
                raise BenchError(f"stream over {MAX_BODY} bytes")
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]" or not payload:
                    continue
                event = msgspec.json.decode(payload)
                if not isinstance(event, dict):
                    continue
                if event.get("error"):
                    err = event["error"]
                    raise BenchError(f"error in the stream: {err.get('message') if isinstance(err, dict) else err}")
                choices = event.get("choices") or []
                if choices and ((choices[0] or {}).get("delta") or {}).get("content"):
                    stamps.append(now)
                if isinstance(event.get("usage"), dict):
                    usage_tokens = int(event["usage"].get("completion_tokens") or 0)
    finally:
        resp.release()
    if not stamps:
        raise BenchError("a stream without content")
    gaps = [(b - a) * 1000.0 for a, b in itertools.pairwise(stamps)]
    end = time.perf_counter()
    return Outcome((end - t0) * 1000.0, len(stamps) if usage_tokens is None else usage_tokens,
                   (stamps[0] - t0) * 1000.0, gaps)


def _refusal(status: int, body: bytes) -> str:
    try:
        message = msgspec.json.decode(body)["error"]["message"]
    except (msgspec.DecodeError, KeyError, TypeError):
        message = body[:200].decode("utf-8", errors="replace").strip()
    return f"HTTP {status}: {message}"


def describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError) and not isinstance(exc, TransportError):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, msgspec.DecodeError):
        return f"malformed JSON: {exc}"
    return str(exc) or type(exc).__name__


async def _worker(target: Target, samples: Samples, stop_at: float, cap: int, clock: Callable[[], float]) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < stop_at and samples.issued < cap:
        if samples.ok == 0 and samples.errors >= GIVE_UP:
            samples.gave_up = True
            return
        samples.issued += 1
        try:
            async with asyncio.timeout(target.timeout + 1.0):
                out = await target.once()
        except FAILURES as exc:
            samples.fail(describe(exc, target.timeout))
            if isinstance(exc, ConnectError | ConnectTimeout | PoolExhausted):
                await asyncio.sleep(BACKOFF)
            continue
        samples.add(out, clock())


async def phase(target: Target, samples: Samples, seconds: float, plan: Plan, status: Status, label: str) -> None:
    """`plan.concurrency` workers on `target` for `seconds` (then each finishes the request it is in)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    offset = samples.elapsed
    status.label, status.phase_start, status.phase_len, status.samples = label, start, seconds, samples

    def clock() -> float:
        return offset + loop.time() - start

    await asyncio.gather(*(_worker(target, samples, start + seconds, plan.max_requests, clock)
                           for _ in range(plan.concurrency)))
    samples.elapsed += loop.time() - start
    status.done_s += seconds
    status.phase_len = 0.0


async def run(targets: list[Target], plan: Plan, status: Status) -> list[Samples]:
    """The warm-up of each target, then the measured load: one phase, or with several targets
    rounds of the same length in rotating order, so drift on the machine hits every target alike."""
    rounds = 1 if len(targets) == 1 else max(1, round(plan.duration / plan.round_s))
    status.total_s = len(targets) * (plan.warmup + plan.duration)
    results = [Samples() for _ in targets]
    if plan.warmup > 0:
        for t in targets:
            await phase(t, Samples(), plan.warmup, plan, status, f"{t.name} warm-up")
    for r in range(rounds):
        for k in range(len(targets)):
            i = (r + k) % len(targets)
            label = targets[i].name if rounds == 1 else f"{targets[i].name} round {r + 1}/{rounds}"
            await phase(targets[i], results[i], plan.duration / rounds, plan, status, label)
    return results
