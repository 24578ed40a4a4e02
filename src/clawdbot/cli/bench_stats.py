"""What `clawdbot bench` measures of one target, and the numbers it reports from that.

Definitions (the same as the shared gateway bench's client): latency is request sent -> response
read to its end; TTFT is request sent -> the first chunk with non-empty `delta.content`; an
inter-chunk gap is the time between two consecutive content chunks of one stream; percentiles are
nearest-rank. RPS and tokens/s count successful requests over the seconds the target was under
load (the sum of its rounds, each from its first request sent to its last answer read)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MAX_ERROR_KINDS = 20  # distinct error messages kept; the rest are counted under "other"


@dataclass(slots=True)
class Outcome:
    """One successful request."""

    latency_ms: float
    tokens: int
    ttft_ms: float | None = None
    gaps_ms: list[float] = field(default_factory=list)


class Samples:
    """One target's requests after the warm-up. Bounded: the request cap bounds the lists."""

    def __init__(self) -> None:
        self.issued = 0
        self.ok = 0
        self.errors = 0
        self.latency: list[float] = []
        self.ttft: list[float] = []
        self.gaps: list[float] = []
        self.tokens = 0
        self.elapsed = 0.0
        self.gave_up = False  # stopped early: every request so far had failed
        self.error_kinds: dict[str, int] = {}
        self.first_error: str | None = None
        self.per_second: dict[int, list[int]] = {}  # second of load -> [requests, tokens]

    def add(self, out: Outcome, at: float) -> None:
        """`at`: seconds of load on this target when the answer was read."""
        self.ok += 1
        self.latency.append(out.latency_ms)
        if out.ttft_ms is not None:
            self.ttft.append(out.ttft_ms)
        self.gaps.extend(out.gaps_ms)
        self.tokens += out.tokens
        bucket = self.per_second.setdefault(int(at), [0, 0])
        bucket[0] += 1
        bucket[1] += out.tokens

    def fail(self, message: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = message
        key = message[:160]
        if key not in self.error_kinds and len(self.error_kinds) >= MAX_ERROR_KINDS:
            key = "other"
        self.error_kinds[key] = self.error_kinds.get(key, 0) + 1

    def timeline(self) -> list[dict[str, float]]:
        """Requests and tokens completed in each second of load; `span_s` < 1 for the last one
        when the load ended within it."""
        out: list[dict[str, float]] = []
        for s in range(max(self.per_second, default=-1) + 1):
            n, tokens = self.per_second.get(s, (0, 0))
            span = min(1.0, max(self.elapsed - s, 0.0))
            out.append({"second": s, "span_s": round(span, 3), "requests": n, "tokens": tokens})
        return out


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted `values` (p in 0..100)."""
    return values[max(0, min(len(values) - 1, math.ceil(p / 100.0 * len(values)) - 1))]


def summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    s = sorted(values)
    return {"p50": pct(s, 50), "p90": pct(s, 90), "p99": pct(s, 99), "min": s[0], "max": s[-1],
            "mean": sum(s) / len(s), "n": len(s)}


def report(name: str, url: str, model: str, samples: Samples, stream: bool) -> dict[str, Any]:
    """One target's numbers, as the JSON document and the table show them."""
    secs = samples.elapsed
    return {
        "name": name, "url": url, "model": model,
        "requests": samples.ok + samples.errors, "ok": samples.ok, "errors": samples.errors,
        "elapsed_s": secs,
        "rps": samples.ok / secs if secs > 0 else 0.0,
        "latency_ms": summary(samples.latency),
        "ttft_ms": summary(samples.ttft) if stream else None,
        "gap_ms": summary(samples.gaps) if stream else None,
        "completion_tokens": samples.tokens,
        "tokens_per_s": samples.tokens / secs if secs > 0 else 0.0,
        "first_error": samples.first_error,
        "gave_up": samples.gave_up,
        "error_kinds": dict(samples.error_kinds),
        "timeline": samples.timeline(),
    }


RATIO_KEYS = {
    "rps": ("rps",), "tokens_per_s": ("tokens_per_s",),
    "latency_p50": ("latency_ms", "p50"), "latency_p90": ("latency_ms", "p90"), "latency_p99": ("latency_ms", "p99"),
    "ttft_p50": ("ttft_ms", "p50"), "ttft_p90": ("ttft_ms", "p90"), "ttft_p99": ("ttft_ms", "p99"),
    "gap_p50": ("gap_ms", "p50"), "gap_p90": ("gap_ms", "p90"), "gap_p99": ("gap_ms", "p99"),
}


def ratios(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float | None]:
    """b / a for each headline number (None where either side has none)."""
    def get(r: dict[str, Any], path: tuple[str, ...]) -> float | None:
        v: Any = r
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        return float(v) if isinstance(v, int | float) else None

    out: dict[str, float | None] = {}
    for key, path in RATIO_KEYS.items():
        x, y = get(a, path), get(b, path)
        out[key] = y / x if x and y is not None else None
    return out
