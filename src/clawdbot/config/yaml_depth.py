"""A cheap look at how deep a YAML text nests, before a parser reads it.

PyYAML's time grows with the square of the nesting (2 s at a depth of 1,100 flow brackets, 10 s at
3,000) and its composer recurses once per level: a config file (or any YAML a user hands the
gateway) is refused past MAX_DEPTH levels, with the line, before the parser runs. No real config
comes near it (the deepest keys of the schema are about 6 levels; a JSON schema inside a tool or
a plugin's settings adds a dozen).

The scan is one pass over the text, line by line, and counts the levels a parser would open: block
collections by their indentation (and `- - x`, a sequence in a sequence on one line), flow
collections by their brackets. It skips what cannot open a level: comments, quoted scalars (which
may run over several lines), block scalars (`|`, `>` and the lines indented under them) and
brackets inside a plain scalar (`a[1]`). Where the text is not valid YAML it may count fewer
levels than there are (the parser then says what is wrong); for valid YAML it never counts more.
Cost: one regex pass per line, and a few steps per bracket, quote or `#`."""

from __future__ import annotations

import re

MAX_DEPTH = 100

_LINES = re.compile(r"\r\n|[\n\r\x85\u2028\u2029]")  # PyYAML's line breaks (its marks count them)
_MARKS = re.compile(r"[\[\]{}'\"#]")
_DASHES = re.compile(r"(?:-(?:[ \t]+|$))+")  # `- - ` : a sequence opened per dash
_BLOCK_SCALAR = re.compile(r"(?:^|[ \t])[|>][1-9+-]{0,2}[ \t]*$")
_FLOW_STARTS = frozenset(":?[{,")  # in a flow collection, a node may begin after these


def too_deep(text: str, limit: int = MAX_DEPTH) -> int | None:
    """The line (from 1) where `text` first nests more than `limit` levels, or None."""
    scan = _Scan(limit)
    for number, line in enumerate(_LINES.split(text), 1):
        if scan.line(line) > limit:
            return number
    return None


class _Scan:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.flow = 0  # open flow collections
        self.quote = ""  # the quote of a quoted scalar still open at the end of the last line
        self.indents: list[int] = []  # the block collections open, by their indentation
        self.scalar_at: int | None = None  # the indentation of the line that began a block scalar

    def line(self, line: str) -> int:
        """Reads one line; the deepest nesting it reached."""
        start, deepest = 0, 0
        if not self.quote and not self.flow:
            body = line.lstrip(" ")
            indent = len(line) - len(body)
            blank = not body or body.isspace()
            if self.scalar_at is not None:
                if blank or indent > self.scalar_at:
                    return 0  # the block scalar's text
                self.scalar_at = None
            if blank or body[0] == "#":
                return 0
            while self.indents and self.indents[-1] > indent:
                self.indents.pop()
            if not self.indents or self.indents[-1] < indent:
                self.indents.append(indent)
            dashes = _DASHES.match(body) if body[0] == "-" else None
            start = indent + (dashes.end() if dashes else 0)
            # a line's first dash is an item of the sequence its indentation opened; each more, one more
            deepest = len(self.indents) + (dashes.group().count("-") - 1 if dashes else 0)
        deepest = max(deepest, self._marks(line, start, len(self.indents)))
        if ("|" in line or ">" in line) and not self.quote and not self.flow \
                and _BLOCK_SCALAR.search(self._uncommented(line)):
            self.scalar_at = len(line) - len(line.lstrip(" "))
        return deepest

    def _marks(self, line: str, start: int, block: int) -> int:
        deepest, i = block + self.flow, start
        while i < len(line):
            if self.quote:
                i = self._close_quote(line, i)
                continue
            m = _MARKS.search(line, i)
            if m is None:
                break
            c, i = m.group(), m.end()
            if c == "#":
                if m.start() == 0 or line[m.start() - 1] in " \t":
                    break  # a comment
            elif c in "]}":
                self.flow = max(0, self.flow - 1)  # (in block context, a plain scalar's text)
            elif self._node_starts(line, start, m.start()):
                if c in "'\"":
                    self.quote = c
                else:
                    self.flow += 1
                    deepest = max(deepest, block + self.flow)
                    if deepest > self.limit:
                        break
            elif not self.flow:  # a plain scalar's text: only after a key's `: ` may a value begin
                value, comment = line.find(": ", i), line.find(" #", i)
                if comment >= 0 and (value < 0 or comment < value):
                    break
                i = len(line) if value < 0 else value + 1
        return deepest

    def _node_starts(self, line: str, start: int, at: int) -> bool:
        """Whether a value may begin at `line[at]` (in block context `start` is past the indentation
        and dashes): else a quote or bracket there is a plain scalar's text. Looks back over spaces
        only, so a line is read in one pass however many marks it holds."""
        j = at - 1
        while j >= start and line[j] in " \t":
            j -= 1
        if j < start:
            return True
        if self.flow:
            return line[j] in _FLOW_STARTS
        spaced = j < at - 1  # `a: [` opens a sequence, `a:[` is a plain scalar
        return spaced and (line[j] == ":" or (line[j] == "?" and j == start))

    def _close_quote(self, line: str, i: int) -> int:
        """Past the end of the open quoted scalar on this line (and closes it), or the line's end."""
        while True:
            at = line.find(self.quote, i)
            if at < 0:
                return len(line)
            if self.quote == "'" and line.startswith("''", at):
                i = at + 2  # '' is a quote inside single quotes
                continue
            if self.quote == '"':
                j = at - 1
                while j >= i and line[j] == "\\":
                    j -= 1
                if (at - 1 - j) % 2:
                    i = at + 1  # \" inside double quotes
                    continue
            self.quote = ""
            return at + 1

    @staticmethod
    def _uncommented(line: str) -> str:
        m = re.search(r"(?:^|[ \t])#", line)
        return line[: m.start()] if m else line
