"""Rate limits (requests and tokens per minute) per key, user, team and model: an exact sliding window.

A subject is `(scope, id, rpm, tpm)`; 0 means "no limit" for that kind. `acquire` checks every
subject of a request at once and admits the request only if all of them have room (a refused
request consumes nothing); `settle` replaces the token estimate by the real usage.

The window is a sliding log: every admitted request is an entry (time, tokens) kept for one period.
"At most N in any 60 s" then holds exactly, with integer arithmetic only (docs/limits.md says why
this beats GCRA or a two-bucket approximation here). Memory per subject is bounded by its limits
(at most `rpm` entries, or `tpm` entries since every request counts at least one token); idle
subjects are dropped once their window is empty: the windows are kept in order of last use, and
each acquisition drops at most SWEEP_STEP of the least recently used ones that are empty, so the
work is spread over the requests (one sweep over every window once stalled the process for 190 ms
at 420,000 active subjects: docs/benchmarks.md, issue 17, cost growth).
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec

from clawdbot.state.ids import unique_hex

PERIOD_S = 60.0  # "per minute"
SWEEP_STEP = 4  # idle windows an acquisition may drop (more than it can create: memory follows use)

Subject = tuple[str, str, int, int]  # (scope, id, rpm, tpm): scope is "key", "user", "team" or "model"


class Usage(msgspec.Struct, frozen=True):
    """One subject's window after a decision: what headers are made from."""

    rpm: int
    tpm: int
    requests: int  # counted in the window
    tokens: int
    reset_s: float  # until the window is empty again (OpenAI: "resets to its initial state")


class Decision(msgspec.Struct, frozen=True):
    allowed: bool
    retry_after_s: float  # 0 when allowed; math.inf when the request can never fit (tokens > tpm)
    ticket: str  # pass to settle()
    subjects: tuple[Subject, ...]
    usage: tuple[Usage, ...]
    limited_by: Subject | None = None

    @property
    def headers(self) -> dict[str, str]:
        return ratelimit_headers(self.usage)


class Limiter(Protocol):
    async def acquire(self, subjects: Sequence[Subject], tokens_estimate: int) -> Decision: ...

    async def settle(self, decision: Decision, actual_tokens: int) -> None: ...


def ratelimit_headers(usage: Sequence[Usage]) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers, each kind from the subject with the least room left."""
    headers: dict[str, str] = {}
    req = [u for u in usage if u.rpm > 0]
    if req:
        u = min(req, key=lambda u: (u.rpm - u.requests, -u.reset_s))
        headers["x-ratelimit-limit-requests"] = str(u.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, u.rpm - u.requests))
        headers["x-ratelimit-reset-requests"] = go_duration(u.reset_s)
    tok = [u for u in usage if u.tpm > 0]
    if tok:
        u = min(tok, key=lambda u: (u.tpm - u.tokens, -u.reset_s))
        headers["x-ratelimit-limit-tokens"] = str(u.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, u.tpm - u.tokens))
        headers["x-ratelimit-reset-tokens"] = go_duration(u.reset_s)
    return headers


def go_duration(seconds: float) -> str:
    """OpenAI's reset format, which is Go's time.Duration: 20ms, 1s, 1.5s, 6m0s, 1h2m3s."""
    ms = max(0, math.ceil(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    if minutes:
        return f"{minutes}m{secs}"
    return secs


def unique(subjects: Sequence[Subject]) -> tuple[Subject, ...]:
    """One entry per (scope, id), the first kept: a subject named twice must not count a request twice."""
    if len(subjects) == 1:
        return (subjects[0],)
    seen: set[tuple[str, str]] = set()
    out = []
    for s in subjects:
        if (s[0], s[1]) not in seen:
            seen.add((s[0], s[1]))
            out.append(s)
    return tuple(out)


def new_ticket() -> str:
    return unique_hex()


class _Window:
    """One subject's log. Entries are (admission time, ticket) tuples and the tokens sit in a dict
    by ticket: both hold only atomic values, so the collector stops tracking them (a busy subject
    keeps a minute of requests: objects the collector would otherwise walk again and again)."""

    __slots__ = ("entries", "tokens", "tokens_of")

    def __init__(self) -> None:
        self.entries: collections.deque[tuple[float, str]] = collections.deque()
        self.tokens_of: dict[str, int] = {}
        self.tokens = 0

    def expire(self, start: float) -> None:
        entries = self.entries
        while entries and entries[0][0] <= start:
            _, ticket = entries.popleft()
            self.tokens -= self.tokens_of.pop(ticket)

    def admit(self, ticket: str, now: float, tokens: int) -> None:
        self.entries.append((now, ticket))
        self.tokens_of[ticket] = tokens
        self.tokens += tokens

    def settle(self, ticket: str, actual: int) -> None:
        old = self.tokens_of.get(ticket)
        if old is not None:  # else: it already left the window
            self.tokens_of[ticket] = actual
            self.tokens += actual - old

    def retry_after(self, rpm: int, tpm: int, tokens: int, now: float, period: float) -> float:
        """Seconds until this subject would admit the request, given no other traffic."""
        wait = 0.0
        if rpm > 0 and len(self.entries) + 1 > rpm:
            # the oldest entries that must leave for one more request to fit
            wait = self.entries[len(self.entries) - rpm][0] + period - now
        if tpm > 0 and self.tokens + tokens > tpm:
            if tokens > tpm:
                return math.inf
            need = self.tokens + tokens - tpm
            for at, ticket in self.entries:
                need -= self.tokens_of[ticket]
                if need <= 0:
                    wait = max(wait, at + period - now)
                    break
        return max(wait, 0.001)

    def usage(self, rpm: int, tpm: int, now: float, period: float) -> Usage:
        reset = self.entries[-1][0] + period - now if self.entries else 0.0
        return Usage(rpm, tpm, len(self.entries), self.tokens, reset)


class MemoryLimiter:
    """The in-process limiter: exact within one process. No await inside, so no lock is needed."""

    def __init__(self, period_s: float = PERIOD_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.period = period_s
        self._clock = clock
        # least recently used first (an OrderedDict: its first item is O(1) after many deletions)
        self._windows: collections.OrderedDict[tuple[str, str], _Window] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._windows)

    async def acquire(self, subjects: Sequence[Subject], tokens_estimate: int) -> Decision:
        return self.acquire_now(subjects, tokens_estimate)

    def acquire_now(self, subjects: Sequence[Subject], tokens_estimate: int) -> Decision:
        subjects = unique(subjects)
        now = self._clock()
        start = now - self.period
        tokens = max(1, tokens_estimate)  # at least one: bounds the entries a TPM-only subject keeps
        windows = [self._window(scope, sid) for scope, sid, _, _ in subjects]
        retry = 0.0
        limited_by: Subject | None = None
        for subject, window in zip(subjects, windows, strict=True):
            window.expire(start)
            _, _, rpm, tpm = subject
            if (rpm > 0 and len(window.entries) + 1 > rpm) or (tpm > 0 and window.tokens + tokens > tpm):
                wait = window.retry_after(rpm, tpm, tokens, now, self.period)
                if wait > retry:
                    retry, limited_by = wait, subject
        ticket = new_ticket()
        if limited_by is None:
            for window in windows:
                window.admit(ticket, now, tokens)
        usage = tuple(w.usage(s[2], s[3], now, self.period) for s, w in zip(subjects, windows, strict=True))
        self._maybe_sweep(start)
        return Decision(limited_by is None, retry, ticket, subjects, usage, limited_by)

    async def settle(self, decision: Decision, actual_tokens: int) -> None:
        self.settle_now(decision, actual_tokens)

    def settle_now(self, decision: Decision, actual_tokens: int) -> None:
        if not decision.allowed:
            return
        actual = max(1, actual_tokens)
        for scope, sid, _, _ in decision.subjects:
            window = self._windows.get((scope, sid))
            if window is not None:
                window.settle(decision.ticket, actual)

    def _window(self, scope: str, sid: str) -> _Window:
        windows = self._windows
        window = windows.get((scope, sid))
        if window is None:
            window = windows[(scope, sid)] = _Window()
        else:
            windows.move_to_end((scope, sid))
        return window

    def _maybe_sweep(self, start: float) -> None:
        """Drop the least recently used windows while they are empty, at most SWEEP_STEP."""
        windows = self._windows
        for _ in range(SWEEP_STEP):
            if not windows:
                return
            name, window = next(iter(windows.items()))
            window.expire(start)
            if window.entries:
                return  # in use lately: so is everything after it
            del windows[name]
