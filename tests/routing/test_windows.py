from __future__ import annotations

import datetime as dt

from clawdbot.routing.windows import TimeWindows


def at(hour: int, minute: int = 0) -> float:
    shanghai = dt.timezone(dt.timedelta(hours=8))
    return dt.datetime(2026, 3, 2, hour, minute, tzinfo=shanghai).timestamp()


def test_windows_in_their_time_zone() -> None:
    w = TimeWindows("Asia/Shanghai", {"peak": ["09:00-12:00", "14:00-18:00"], "night": ["22:00-06:00"]})
    assert w.label(at(10)) == "peak"
    assert w.label(at(13)) == "off_peak"
    assert w.label(at(23, 30)) == "night" and w.label(at(3)) == "night"
    assert w.active(at(17, 59)) == {"peak"} and w.active(at(18)) == frozenset()


def test_whole_day_and_overlaps() -> None:
    w = TimeWindows("UTC", {"always": ["00:00-24:00"], "lunch": ["12:00-13:00"]})
    noon = dt.datetime(2026, 1, 1, 12, 30, tzinfo=dt.UTC).timestamp()
    assert w.label(noon) == "always" and w.active(noon) == {"always", "lunch"}
