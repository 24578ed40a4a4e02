"""What the pii detectors share: the span type, full-width folding, and `Scan`, one text being
scanned with what several detectors use made once (the folded text, the runs of digits, the lower
case). pii_detect.py says why the passes are shared."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

TYPES: tuple[str, ...] = ("EMAIL", "PHONE", "CN_ID", "CARD", "IBAN", "IP", "SECRET")


class Span(NamedTuple):
    type: str
    start: int
    end: int
    text: str


# Full-width forms to ASCII, one character for one character (offsets stay valid).
_FOLD = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_FOLD[0x3000] = 0x20  # ideographic space
# Only the forms that can be part of a value are folded: digits, letters, + @ - . ( ) _ and the
# ideographic space. Chinese punctuation (the full-width comma and colon, the ideographic full
# stop) is left alone: it is in nearly every Chinese text (folding it would cost a substitution
# per sentence), and a full-width comma is no thousands separator.
_FULL_WIDTH = re.compile("[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a\uff0b\uff20\uff0d\uff0e\uff08\uff09\uff3f\u3000]+")


def fold(text: str) -> str:
    """Full-width digits, letters and value punctuation to ASCII; the same length as `text`.
    str.translate looks every character of a non-ASCII text up in a dict (slow): only the
    full-width runs are translated."""
    if text.isascii() or not _FULL_WIDTH.search(text):
        return text
    return _FULL_WIDTH.sub(lambda m: m.group().translate(_FOLD), text)


# A run of digits and the punctuation numbers are written with: the shared first pass.
_RUN = re.compile(r"[+(0-9][0-9 \-.()+]{3,}")


class Scan:
    """One text being scanned: the folded text, and what several detectors share, made once."""

    __slots__ = ("_lower", "_runs", "orig", "t")

    def __init__(self, text: str) -> None:
        self.orig = text
        self.t = fold(text)
        self._runs: list[tuple[int, int, int]] | None = None
        self._lower: str | None = None

    def runs(self) -> list[tuple[int, int, int]]:
        """(start, end, digits) of each run of 4+ digits (with their separators)."""
        if self._runs is None:
            t = self.t
            out: list[tuple[int, int, int]] = []
            for m in _RUN.finditer(t):
                s, e = m.span()
                while e > s and t[e - 1] in " -.(+":
                    e -= 1
                seg = t[s:e]
                digits = len(seg) - seg.count(" ") - seg.count("-") - seg.count(".") - seg.count("(") \
                    - seg.count(")") - seg.count("+")
                if digits >= 4:
                    out.append((s, e, digits))
            self._runs = out
        return self._runs

    def lower(self) -> str:
        if self._lower is None:
            self._lower = self.t.lower()
        return self._lower

    def span(self, type_: str, s: int, e: int) -> Span:
        return Span(type_, s, e, self.orig[s:e])

    def bounded(self, rx: re.Pattern[str], s: int, e: int) -> Iterator[re.Match[str]]:
        """`rx` over one run. Lookbehinds see the text before it; lookaheads the 3 chars after."""
        return rx.finditer(self.t, s, min(len(self.t), e + 3))
