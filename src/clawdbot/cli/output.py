"""How a CLI command prints: rich (colour, tables, progress bars) on a terminal, plain aligned text
when piped, one JSON document with `--json`. Commands build their results as data and hand them
here, so the three forms always say the same thing. `NO_COLOR` (no-color.org) turns colour off."""

from __future__ import annotations

import json
import os
import sys
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

STYLES = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}
MARKS = {"ok": "ok", "warn": "warn", "fail": "FAIL", "skip": "skip"}


class Output:
    def __init__(self, json_mode: bool = False, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.json = json_mode
        self.rich = not json_mode and self.stream.isatty()
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream, no_color="NO_COLOR" in os.environ, highlight=False)
        return self._console

    def data(self, obj: Any) -> None:
        """The command's whole result, as JSON (with --json)."""
        self.stream.write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")
        self.stream.flush()

    def line(self, text: str = "", style: str | None = None) -> None:
        if self.rich:
            self.console.print(text, style=style, markup=False, soft_wrap=True)
        else:
            self.stream.write(text + "\n")

    def verdict(self, status: str, text: str, detail: str = "") -> None:
        """One check's line: `[ ok ] what` and, indented below, the detail (the fix, when it failed)."""
        mark = MARKS[status]
        if self.rich:
            from rich.text import Text

            line = Text.assemble(("[", "dim"), (f"{mark:^4}", STYLES[status]), ("] ", "dim"), text)
            self.console.print(line, soft_wrap=True)
            if detail:
                self.console.print(Text("       " + detail, style="dim" if status == "ok" else ""), soft_wrap=True)
        else:
            self.stream.write(f"[{mark:^4}] {text}\n")
            if detail:
                self.stream.write(f"       {detail}\n")

    def table(self, rows: list[dict[str, str]], columns: tuple[str, ...], right: tuple[str, ...] = (),
              title: str | None = None) -> None:
        if self.rich:
            from rich.table import Table

            t = Table(title=title, title_justify="left", header_style="bold")
            for c in columns:
                t.add_column(c.upper(), justify="right" if c in right else "left")
            for r in rows:
                t.add_row(*(r[c] for c in columns))
            self.console.print(t)
            return
        if title:
            self.stream.write(title + "\n")
        self.stream.write(table(rows, columns, right) + "\n")


def table(rows: list[dict[str, str]], columns: tuple[str, ...], right: tuple[str, ...] = ()) -> str:
    """Plain text, columns aligned; those named in `right` (numbers) aligned right, header included."""
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}

    def line(cells: dict[str, str]) -> str:
        return "  ".join(cells[c].rjust(widths[c]) if c in right else cells[c].ljust(widths[c])
                         for c in columns).rstrip()

    return "\n".join([line({c: c.upper() for c in columns}), *(line(r) for r in rows)])
