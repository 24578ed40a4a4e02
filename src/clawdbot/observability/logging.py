"""Logging set-up: text or JSON lines, each carrying the request id of the request it belongs to.

Lines are buffered and written in one syscall at most every 50 ms (and at once for warnings and
above, and at exit): one write per request was the largest cost of a proxied request after the
HTTP work itself."""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import sys
import threading
import time
from typing import Any, TextIO

import msgspec

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_encode = msgspec.json.Encoder().encode
FLUSH_INTERVAL = 0.05
MAX_BUFFERED = 512  # lines; a burst past this is written at once rather than held


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


_second: list[Any] = [-1, ""]  # the last whole second formatted, and its text: one strftime per second


def timestamp(created: float) -> str:
    whole = int(created)
    if whole != _second[0]:
        _second[0], _second[1] = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(whole))
    return f"{_second[1]}.{int(created % 1 * 1000):03d}"


# Control characters (newline, CR, NUL, ESC, ...) written as escapes: a message that quotes a
# client's input must not start a line of its own (a forged access-log line) or drive a terminal.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(32), 127)}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def escape_text(text: str) -> str:
    return text.translate(_ESCAPES) if not text.isprintable() else text


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        line = f"{timestamp(record.created)} {record.levelname:<5} {record.name}"
        if rid:
            line += f" request_id={rid}"
        line += " " + escape_text(record.getMessage())
        if record.exc_info:
            # indented, so that no line of a traceback (whose last one quotes the error) can pass
            # for a log line of its own
            trace = self.formatException(record.exc_info)
            line += "\n" + "\n".join("  " + escape_text(t) for t in trace.splitlines())
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        rid = getattr(record, "request_id", None)
        if rid:
            out["request_id"] = rid
        out["msg"] = record.getMessage()
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _encode(out).decode()


class BufferedHandler(logging.Handler):
    """Collects formatted lines and writes them in batches from the event loop."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._lines: list[str] = []
        self._scheduled = False
        self._guard = threading.Lock()  # log calls may come from worker threads (local inference)
        atexit.register(self.flush)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write_line(self.format(record), urgent=record.levelno >= logging.WARNING)
        except Exception:
            self.handleError(record)

    def write_line(self, line: str, urgent: bool = False) -> None:
        with self._guard:
            self._lines.append(line)
            pending = len(self._lines)
        if urgent or pending >= MAX_BUFFERED:
            self.flush()
            return
        if not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._scheduled = True
            loop.call_later(FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        with self._guard:
            lines, self._lines = self._lines, []
            self._scheduled = False
        if lines:
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # stderr closed: nowhere left to report it


def setup_logging(fmt: str = "text", level: str = "info") -> BufferedHandler:
    handler = BufferedHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log would duplicate ours and its error logger has its own format
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its set-up chatter; clawdbot logs the revision
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    return handler
