"""What the session collects for the leak scan: the secrets it used, and every text a gateway produced
that someone other than its operator's config could read (logs, error bodies, metrics, traces, stored
state, CLI output).

One Collector is active per pytest session (tests/secrets/plugin.py); the harness and the client taps
reach it through `active()`. Outside a session (or with the plugin disabled) `active()` is a
do-nothing collector, so the harness works the same without it. Texts go to files in the session's
directory as they come (a whole e2e run's responses and logs do not stay in memory)."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.secrets.scan import MIN_SECRET_CHARS, Secret, Source


@dataclass(frozen=True)
class _FileSource:
    name: str
    test: str
    path: Path
    binary: bool


class Collector:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.test = ""  # the running test's node id (the plugin keeps it current)
        self.secrets: dict[str, Secret] = {}
        self._files: list[_FileSource] = []
        self._records = root / "records.jsonl"  # small texts: one JSON object per line
        self._counts: dict[str, int] = {}
        self._gateway_ports: dict[int, int] = {}  # port -> gateways listening on it (started, not stopped)
        self._lock = threading.Lock()  # clients in tests send from threads

    # --- secrets -----------------------------------------------------------------------------------
    def add_secret(self, value: str, kind: str, origin: str) -> None:
        value = value.strip()
        if len(value) < MIN_SECRET_CHARS:
            return
        with self._lock:
            self.secrets.setdefault(value, Secret(value, kind, origin))

    # --- texts -------------------------------------------------------------------------------------
    def add_text(self, kind: str, name: str, text: str, test: str | None = None) -> None:
        """A text source (a response body, a scrape, a CLI's output); `kind` groups them in the summary."""
        line = json.dumps({"name": name, "test": self.test if test is None else test, "text": text})
        with self._lock:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            with self._records.open("a", encoding="utf-8") as f:
                f.write(line + "\n")

    def add_file(self, kind: str, name: str, path: Path, binary: bool = False, test: str | None = None) -> None:
        """A copy of `path` as it is now (a log the gateway may truncate at its next start)."""
        with self._lock:
            n = len(self._files)
            copy = self.root / f"{n:05d}-{path.name}"
            try:
                shutil.copyfile(path, copy)
            except OSError:
                return
            self._counts[kind] = self._counts.get(kind, 0) + 1
            self._files.append(_FileSource(name, self.test if test is None else test, copy, binary))

    def sources(self, test: str | None = None) -> Iterator[Source]:
        """Everything collected (only what `test` produced, when given)."""
        with self._lock:
            files = list(self._files)
        for f in files:
            if test is None or f.test == test:
                data = f.path.read_bytes()
                text = data.decode("latin-1") if f.binary else data.decode("utf-8", "replace")
                yield Source(f"{f.name} [{f.path}]", text, f.test, f.binary)
        if self._records.exists():
            with self._records.open(encoding="utf-8") as lines:
                for line in lines:
                    rec = json.loads(line)
                    if test is None or rec["test"] == test:
                        yield Source(rec["name"], rec["text"], rec["test"])

    def summary(self) -> str:
        kinds: dict[str, int] = {}
        for s in self.secrets.values():
            kinds[s.kind] = kinds.get(s.kind, 0) + 1
        secrets = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"
        sources = ", ".join(f"{n} {k}" for k, n in sorted(self._counts.items())) or "none"
        return f"secrets: {secrets}; sources: {sources}"

    # --- which ports are gateways ------------------------------------------------------------------
    def gateway_listening(self, ports: list[int]) -> None:
        with self._lock:
            for p in ports:
                self._gateway_ports[p] = self._gateway_ports.get(p, 0) + 1

    def gateway_closed(self, ports: list[int]) -> None:
        with self._lock:
            for p in ports:
                left = self._gateway_ports.get(p, 0) - 1
                if left > 0:
                    self._gateway_ports[p] = left
                else:
                    self._gateway_ports.pop(p, None)

    def is_gateway(self, host: str | None, port: int | None) -> bool:
        return host in ("127.0.0.1", "localhost", "::1", "[::1]") and port in self._gateway_ports


class _Off(Collector):
    """The collector when none is active: keeps nothing."""

    def __init__(self) -> None:  # no directory, no state
        self.test = ""
        self.secrets = {}

    def add_secret(self, value: str, kind: str, origin: str) -> None:
        pass

    def add_text(self, kind: str, name: str, text: str, test: str | None = None) -> None:
        pass

    def add_file(self, kind: str, name: str, path: Path, binary: bool = False, test: str | None = None) -> None:
        pass

    def sources(self, test: str | None = None) -> Iterator[Source]:
        return iter(())

    def gateway_listening(self, ports: list[int]) -> None:
        pass

    def gateway_closed(self, ports: list[int]) -> None:
        pass

    def is_gateway(self, host: str | None, port: int | None) -> bool:
        return False


OFF = _Off()
_active: list[Collector] = [OFF]  # a stack: a test may collect on its own for a while (activated)


def active() -> Collector:
    return _active[-1]


@contextlib.contextmanager
def activated(collector: Collector) -> Iterator[Collector]:
    """`collector` receives what is collected until the block ends (the session's, or a test's own)."""
    _active.append(collector)
    try:
        yield collector
    finally:
        _active.remove(collector)
