"""Every tool call's record: one access-log line (server, tool, status, latency, result size; never
arguments or results) and the counters /metrics exports (clawdbot_mcp_tool_calls, ..._seconds, and
with `metrics.key_labels` clawdbot_key_mcp_tool_calls per key, team and status)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import msgspec

from clawdbot.observability.access import _fmt
from clawdbot.observability.logging import timestamp

_log = logging.getLogger("clawdbot.access")
_encode = msgspec.json.Encoder().encode
MAX_SERIES = 1000  # distinct (server, tool, status); beyond it they count under tool `other`
NONE, OTHER = "none", "other"  # a caller without a key or team; keys past metrics.max_key_series
# the `event` field: tools/call, prompts/get, resources/read
CALL, PROMPT, RESOURCE = "mcp_call", "mcp_prompt", "mcp_resource"
# what a call ended as (the `status` field and label)
OK, TOOL_ERROR, UNKNOWN, RATE_LIMITED, TIMEOUT, TOO_LARGE, UNAVAILABLE, CANCELLED, FAILED = (
    "ok", "tool_error", "unknown_tool", "rate_limited", "timeout", "too_large", "unavailable", "cancelled", "error")


class CallLog:
    def __init__(self, json: bool, sink: Callable[[str], None] | None = None) -> None:
        self.json = json
        # the access log's writer (observability/access.py), which takes the line as it is; None: the
        # logging module, whose formatter then frames a message, so it gets the fields only
        self.sink = sink
        # (server, tool, status) -> [calls, seconds]
        self.series: dict[tuple[str, str, str], list[float]] = {}
        # (key id, team id, status) -> calls: only with metrics.key_labels (None: off), bounded as
        # the per-key request counters are (observability/requests.py)
        self.keys: dict[tuple[str, str, str], int] | None = None
        self.max_keys = 1000

    def configure(self, key_labels: bool, max_keys: int) -> None:
        """metrics.key_labels and max_key_series (at start and on every reload; off drops the series)."""
        if key_labels and self.keys is None:
            self.keys = {}
        elif not key_labels:
            self.keys = None
        self.max_keys = max_keys

    def record(self, request_id: str, key: str, server: str, tool: str, status: str, started: float,
               result_bytes: int | None, event: str = CALL, key_id: str | None = None,
               team_id: str | None = None) -> None:
        """`tool` is a prompt's name or a resource's URI for those events (which /metrics leaves out)."""
        seconds = time.perf_counter() - started
        if event != CALL:
            if _log.isEnabledFor(logging.INFO):
                self._line(request_id, key, server, tool[:200], status, round(seconds * 1000, 2), result_bytes, event)
            return
        label = (server, tool, status)
        s = self.series.get(label)
        if s is None:
            if len(self.series) >= MAX_SERIES:
                label = (server, "other", status)
            s = self.series.setdefault(label, [0, 0.0])
        s[0] += 1
        s[1] += seconds
        if self.keys is not None:
            self._key(key_id or NONE, team_id or NONE, status)
        if _log.isEnabledFor(logging.INFO):
            self._line(request_id, key, server, tool, status, round(seconds * 1000, 2), result_bytes)

    def _key(self, key_id: str, team_id: str, status: str) -> None:
        keys = self.keys
        assert keys is not None
        k = (key_id, team_id, status)
        if k not in keys and len(keys) >= self.max_keys:
            k = (OTHER, OTHER, status)
        keys[k] = keys.get(k, 0) + 1

    def _line(self, request_id: str, key: str, server: str, tool: str, status: str, latency_ms: float,
              result_bytes: int | None, event: str = CALL) -> None:
        now = time.time()
        if self.json:
            line = _encode({"ts": round(now, 3), "level": "info", "logger": "clawdbot.access",
                            "request_id": request_id, "event": event, "key": key, "server": server,
                            "tool": tool, "status": status, "latency_ms": latency_ms,
                            "result_bytes": result_bytes}).decode()
        else:
            line = (f"request_id={request_id} event={event} key={_fmt(key)} server={_fmt(server)} "
                    f"tool={_fmt(tool)} status={status} latency_ms={latency_ms}")
            if result_bytes is not None:
                line += f" result_bytes={result_bytes}"
            if self.sink is not None:
                line = f"{timestamp(now)} INFO  clawdbot.access {line}"
        if self.sink is not None:
            self.sink(line)
        else:
            _log.info("%s", line)

    def snapshot(self) -> dict[tuple[str, str, str], tuple[int, float]]:
        return {k: (int(v[0]), v[1]) for k, v in list(self.series.items())}

    def key_snapshot(self) -> dict[tuple[str, str, str], int] | None:
        keys = self.keys
        return None if keys is None else dict(keys)
