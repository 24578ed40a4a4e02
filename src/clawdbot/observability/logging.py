"""Logging set-up: text or JSON lines, each carrying the request id of the request it belongs to.

The event loop never writes a log line itself: BufferedHandler gathers lines into a batch, and a
timer hands the batch to a writer thread 50 ms after its first line (at once for a warning or worse,
or once 512 lines wait), which writes it with one syscall. One write per request was the largest
cost of a proxied request after the HTTP work itself, and a write on the loop stalls every request
for as long as stderr's reader (a terminal, a pipe nobody drains, a slow disk) takes. When more than
MAX_PENDING_BYTES wait (gathered or handed over; each line counted with LINE_COST bytes more), info
lines are dropped and counted (warnings and errors have a reserve as large again; /metrics:
clawdbot_log_lines_dropped); once the writer has made room again, one line says how many, after the
lines that were waiting when they were dropped. On Linux the writer is SCHED_BATCH: woken, it never
preempts the loop's thread. At exit what waits is written, for EXIT_TIMEOUT seconds at most: atexit,
or flush_logs() where an exit skips atexit."""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import contextvars
import io
import logging
import os
import queue
import sys
import threading
import time
from typing import Any, TextIO

import msgspec

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_encode = msgspec.json.Encoder().encode
FLUSH_INTERVAL = 0.05  # seconds a batch gathers before the writer writes it
BATCH_LINES = 512  # lines that wake the writer before the interval is over
MAX_PENDING_BYTES = 2 * 1024 * 1024  # ~0.7 s of access lines at 8,000 requests/s
LINE_COST = 64  # bytes a line counts for beyond its text (its str object): the bound holds for short lines too
EXIT_TIMEOUT = 2.0  # seconds the writer has at exit (and flush() waits) before lines are given up


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
    """Hands formatted lines to a writer thread through a bounded buffer (see the module's doc).

    On the event loop a batch is handed over by a timer, FLUSH_INTERVAL after its first line (as a
    synchronous write used to be: one timer a batch, the lowest cost per line that was measured);
    warnings at once; from a thread without a loop at once while the writer keeps up, else as soon
    as a line finds it caught up. The writer takes batches from a SimpleQueue and takes no lock: a
    thread that held one while it waited for the GIL or a CPU would make the loop wait for it. What
    it has written it says through a deque, which the producers' side reads under its lock when it
    hands a batch over or meets the bound. The hot path keeps one number, the room left."""

    def __init__(self, stream: TextIO, max_bytes: int = MAX_PENDING_BYTES, interval: float = FLUSH_INTERVAL) -> None:
        super().__init__()
        self.stream = stream
        self.max_bytes, self.interval = max_bytes, interval
        self.dropped = 0  # lines given up since start: a full buffer, or a stream that failed (/metrics)
        self._lines: list[str] = []  # the batch being gathered
        self._room = max_bytes  # what may still be gathered (each line costs len + LINE_COST); 0 while dropping
        self._queued = 0  # the cost handed to the writer and not known to be written yet
        self._done: collections.deque[tuple[int, int]] = collections.deque()  # the writer's (cost, lines lost)
        self._unreported = 0  # drops not yet handed to the writer to report
        self._batch_lines = BATCH_LINES  # 1 once closed: at exit every line is handed over at once
        self._scheduled = False  # a timer hands the batch over
        self._stuck = False  # a flush timed out (the stream blocks): later ones do not wait until it moves
        self._queue: queue.SimpleQueue[tuple[list[str], int, int] | threading.Event] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()  # the producers' (the loop, worker threads' log calls); never the writer's
        atexit.register(self.close)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write_line(self.format(record), urgent=record.levelno >= logging.WARNING)
        except Exception:
            self.handleError(record)

    def write_line(self, line: str, urgent: bool = False) -> None:
        """The hot path (the access log calls it once per request): an append under a lock, and a
        timer once per batch."""
        cost = len(line) + LINE_COST
        with self._guard:
            if cost > self._room and self._refused(cost, urgent):
                return
            self._room -= cost
            lines = self._lines
            lines.append(line)
            if urgent or len(lines) >= self._batch_lines:
                self._take(0)
            elif not self._scheduled and not self._schedule():
                # a thread without a loop: at once while the writer keeps up, else gathered until
                # it has (or BATCH_LINES wait, or the next warning, flush or exit)
                self._settle()
                if not self._queued:
                    self._take(0)

    def _refused(self, cost: int, urgent: bool) -> bool:
        """Past the bound (the lock held): after counting what the writer has finished since, info
        lines are dropped; warnings and errors have a reserve as large again."""
        if self._done:
            self._settle()
        if cost <= self._room or (urgent and cost <= self._room + self.max_bytes):
            return False
        self.dropped += 1
        self._unreported += 1
        self._room = min(self._room, 0)  # until the writer makes room, every line comes here
        self._schedule()  # the report, once there is room, if no line comes first
        return True

    def _schedule(self) -> bool:
        """A timer on the running loop hands the batch over (the lock held); False: no loop here."""
        if self._scheduled:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False  # a thread without a loop
        self._scheduled = True
        loop.call_later(self.interval, self._hand_over)
        return True

    def _settle(self) -> None:
        """Counts what the writer has written as no longer pending and works out the room left (the
        lock held). Room again after drops: their report is handed over now, after the lines that
        were waiting when they were dropped."""
        done = self._done
        if done:
            self._stuck = False  # the writer moves again: a flush may wait for it
        while done:
            cost, lost = done.popleft()
            self._queued -= cost
            self.dropped += lost
        self._room = self.max_bytes - self._queued - _cost(self._lines)
        if self._unreported and self._room > 0:
            self._take(self._unreported)

    def _hand_over(self) -> None:
        """The timer's end (and flush's start): the gathered batch to the writer."""
        with self._guard:
            self._scheduled = False
            self._settle()
            if self._unreported:
                self._schedule()  # no room yet: look again in a while
            self._take(0)

    def _take(self, dropped: int) -> None:
        """The gathered lines, then a line reporting `dropped`, to the writer (the lock held)."""
        batch = self._lines
        if not batch and not dropped:
            return
        cost = _cost(batch)
        self._lines = []
        self._unreported -= dropped
        self._queued += cost
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
            self._thread.start()
        self._queue.put((batch, cost, dropped))  # under the lock: batches queue in the order taken

    def _run(self) -> None:
        if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_BATCH"):
            # Linux: this thread (0: the caller) never preempts the event loop's when woken, where
            # both share a core (gateways pinned to one); it gets its fair share of the CPU at the
            # scheduler's tick or when the loop waits, so it is never starved.
            with contextlib.suppress(OSError):
                os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        get, done = self._queue.get, self._done
        while True:
            item = get()
            if isinstance(item, threading.Event):  # flush(): everything before it is written
                item.set()
                continue
            lines, cost, dropped = item
            count = len(lines)
            if dropped:
                lines.append(self._report(dropped))
            lost = self._write(lines)
            done.append((cost, min(lost, count)))

    def _report(self, dropped: int) -> str:
        record = logging.LogRecord("clawdbot.logging", logging.WARNING, __file__, 0,
                                   "%d log lines dropped (the log's reader fell behind)", (dropped,), None)
        try:
            return self.format(record)
        except Exception:
            return f"{dropped} log lines dropped (the log's reader fell behind)"

    def _write(self, lines: list[str]) -> int:
        """Lines lost: all of them if the stream failed (closed: nowhere left to say so)."""
        try:
            write_all(self.stream, "\n".join(lines) + "\n")
        except Exception:
            return len(lines)
        return 0

    def flush(self, timeout: float = EXIT_TIMEOUT) -> None:
        """Hands the batch over and waits until everything before it is written, `timeout` seconds
        at most. Not for the event loop: at exit, and before a message printed to the same stream."""
        deadline = time.monotonic() + timeout
        for _ in range(2):  # the second: the report of drops that the first one made room for
            if self._stuck:
                return
            self._hand_over()
            if self._thread is None:
                return  # nothing was ever handed over
            done = threading.Event()
            self._queue.put(done)
            if not done.wait(max(0.0, deadline - time.monotonic())):
                self._stuck = True
                return
            with self._guard:
                self._settle()  # which hands over the report if this made room after drops
                if not self._queued:
                    return

    def close(self) -> None:
        """At exit (atexit, then logging.shutdown): what waits is written, within EXIT_TIMEOUT."""
        with self._guard:
            already, self._batch_lines = self._batch_lines == 1, 1
        if not already:
            self.flush()
        super().close()

    def stats(self) -> dict[str, int]:
        with self._guard:
            self._settle()
            return {"dropped": self.dropped, "pending_bytes": self._queued + _cost(self._lines)}


def _cost(lines: list[str]) -> int:
    """What lines count against the bound: their text and LINE_COST each (the str and its slot)."""
    return sum(map(len, lines)) + LINE_COST * len(lines)


def write_all(stream: TextIO, text: str) -> None:
    """Writes `text` to the stream's file descriptor when it has one (os.write, the GIL released,
    not through the TextIOWrapper's lock that print() to the same stream takes too), else to the
    stream; every byte, however many partial writes that takes."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        stream.write(text)
        stream.flush()
        return
    data = memoryview(text.encode(getattr(stream, "encoding", None) or "utf-8", "backslashreplace"))
    while data:
        data = data[os.write(fd, data):]


def log_stats() -> dict[str, int]:
    """The root logger's BufferedHandlers' counts summed (/metrics: clawdbot_log_lines_dropped)."""
    total = {"dropped": 0, "pending_bytes": 0}
    for handler in logging.getLogger().handlers:
        if isinstance(handler, BufferedHandler):
            for key, value in handler.stats().items():
                total[key] += value
    return total


def flush_logs(timeout: float = EXIT_TIMEOUT) -> None:
    """Writes what the root logger's BufferedHandlers hold, `timeout` seconds at most for each: for
    an exit that skips atexit (uvicorn re-raises SIGTERM, whose default action ends the process)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, BufferedHandler):
            handler.flush(timeout)


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
