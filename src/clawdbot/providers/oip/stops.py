"""Stop sequences enforced by the gateway on streamed text: the request's `stop` strings and the
chat template's end-of-turn markers. Servers that take text over tensors differ in whether they honour
stop strings (Triton's TensorRT-LLM takes `stop_words`, a custom runtime may not), so the answer is
cut here too: at the first stop string, which is never passed on. Text that could be the start of a
stop string split across two responses is held back until the next one decides."""

from __future__ import annotations


class StopScanner:
    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in dict.fromkeys(stops) if s]
        self.keep = max((len(s) for s in self.stops), default=1) - 1
        self.held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """What of `text` may go to the client now; after a stop string, nothing more."""
        if self.stopped:
            return ""
        if not self.stops:
            return text
        buf = self.held + text
        cut = min((i for i in (buf.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self.held = ""
            return buf[:cut]
        hold = self._partial(buf)
        self.held = buf[len(buf) - hold:] if hold else ""
        return buf[:len(buf) - hold]

    def _partial(self, buf: str) -> int:
        """The length of the longest end of `buf` that begins some stop string."""
        for n in range(min(self.keep, len(buf)), 0, -1):
            tail = buf[-n:]
            if any(s.startswith(tail) for s in self.stops):
                return n
        return 0

    def flush(self) -> str:
        """What was held back, once the answer is over."""
        out, self.held = self.held, ""
        return "" if self.stopped else out

    def cut(self, text: str) -> tuple[str, bool]:
        """A whole answer cut at its first stop string, and whether one was found."""
        out = self.feed(text) + self.flush()
        return out, self.stopped
