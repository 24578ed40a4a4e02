"""Named time-of-day windows in a configured time zone (`routing.windows`), as the rules strategy
and the routing hook's `context.time_of_day` see them. Computed at most once a minute."""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo

DEFAULT_LABEL = "off_peak"  # time_of_day when no window matches


def _minutes(clock: str) -> int:
    h, m = clock.split(":")
    return int(h) * 60 + int(m)


class TimeWindows:
    __slots__ = ("_active", "_label", "_until", "spans", "tz")

    def __init__(self, timezone: str, windows: dict[str, list[str]]) -> None:
        self.tz = zoneinfo.ZoneInfo(timezone)
        self.spans: list[tuple[str, int, int]] = []
        for name, spans in windows.items():
            for span in spans:
                start, _, end = span.partition("-")
                self.spans.append((name, _minutes(start), _minutes(end)))
        self._until = 0.0
        self._active: frozenset[str] = frozenset()
        self._label = DEFAULT_LABEL

    def now(self, at: float | None = None) -> dt.datetime:
        return dt.datetime.fromtimestamp(time.time() if at is None else at, self.tz)

    def _refresh(self, at: float) -> None:
        local = self.now(at)
        minute = local.hour * 60 + local.minute
        active = []
        for name, start, end in self.spans:
            # 22:00-06:00 wraps midnight; 00:00-24:00 is the whole day
            inside = start <= minute < end if start <= end else (minute >= start or minute < end)
            if inside and name not in active:
                active.append(name)
        self._active = frozenset(active)
        self._label = active[0] if active else DEFAULT_LABEL
        self._until = at - (at % 60.0) + 60.0

    def active(self, at: float | None = None) -> frozenset[str]:
        """The names of the windows `at` (default: now) falls in."""
        at = time.time() if at is None else at
        if at >= self._until or at < self._until - 60.0:
            self._refresh(at)
        return self._active

    def label(self, at: float | None = None) -> str:
        """The first configured window that matches, else "off_peak"."""
        self.active(at)
        return self._label
