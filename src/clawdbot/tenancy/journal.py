"""The spend journal: every spend record is written here the moment it is made, before any
database sees it, so a process killed with SIGKILL (or by the OOM killer) loses none.

Records are JSON lines, each appended with one `write()` to the active segment
`spend-<slot>.<seq>.journal` in the data directory. A write that reached the page cache survives the
process's death; only the machine's crash can lose it, and the writer fsyncs the segment every
flush to bound that too. What the database has taken is known in memory only: segments before the
delivered position are deleted and the active one is truncated when everything in it is delivered.
After a crash the slot's segments are delivered again from their start; the sink ignores record
ids it already holds, so delivery is at least once and the table's rows exactly once.

Slots: a process holds an exclusive `flock` on `spend-<slot>.lock` for its life (the lowest free
slot), so workers and replicas sharing a data directory never write one file. A slot whose lock is
free belongs to a process that is gone; any process may adopt its segments (deliver them, delete
them) while it holds that lock. The single `spend.journal` of earlier versions is adopted the same
way, from its `.offset`.

Blocking file I/O other than the append (reads, fsync, adoption) runs through `asyncio.to_thread`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from clawdbot.state.files import private_file

log = logging.getLogger("clawdbot.spend")

Pos = tuple[int, int]  # (segment number, byte offset just after a record)
SEGMENT = re.compile(r"spend-(\d+)\.(\d+)\.journal")
LOCK = re.compile(r"spend-(\d+)\.lock")
LEGACY = "spend.journal"
MAX_SLOTS = 1024


class JournalFull(Exception):
    def __init__(self, path: Path, size: int, max_bytes: int) -> None:
        super().__init__(f"spend journal {path} is full ({size} of {max_bytes} bytes)")


def _lock(path: Path) -> int | None:
    """An exclusive flock on `path` (created 0600), or None when another process holds it."""
    private_file(path)
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def read_lines(path: Path, offset: int, max_records: int, end: int | None = None) -> tuple[list[bytes], int]:
    """Up to `max_records` whole lines from `offset` (to `end` when given), and the offset after them.
    A last line without its newline is not a record yet (or was torn by a crash): it is left."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(-1 if end is None else end - offset) if max_records > 0 else b""
    lines: list[bytes] = []
    start = 0
    while len(lines) < max_records:
        nl = data.find(b"\n", start)
        if nl < 0:
            break
        lines.append(data[start:nl])
        start = nl + 1
    return lines, offset + start


@dataclass
class Orphan:
    """Segments of a slot nobody holds (or the legacy file), locked by us while we deliver them."""

    lock_fd: int
    files: list[tuple[Path, int]]  # (path, the offset delivery starts from), oldest first
    name: str

    def release(self, delivered: bool) -> None:
        if delivered:
            for path, _ in self.files:
                path.unlink(missing_ok=True)
                if path.name == LEGACY:
                    path.with_name(LEGACY + ".offset").unlink(missing_ok=True)
        os.close(self.lock_fd)


class Journal:
    def __init__(self, directory: str | os.PathLike[str], max_bytes: int = 64 * 1024 * 1024,
                 segment_bytes: int = 4 * 1024 * 1024) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.slot, self._lock_fd = self._take_slot()
        # segments before `first` are what an earlier process of this slot left (adopt_own())
        old = self._segments(self.slot)
        self.seq = self.first = max(old) + 1 if old else 0
        self._closed: list[int] = []  # our own segments before the active one, oldest first
        self._sizes: dict[int, int] = {}  # their sizes
        self._retired: list[int] = []  # fds of rotated segments: fsynced and closed by sync()
        self._open_active()
        self.dirty = False  # written since the last sync()

    # --- this process's slot -------------------------------------------------------------------

    def _take_slot(self) -> tuple[int, int]:
        for slot in range(MAX_SLOTS):
            fd = _lock(self.dir / f"spend-{slot}.lock")
            if fd is not None:
                return slot, fd
        raise OSError(f"no free spend journal slot in {self.dir} ({MAX_SLOTS} processes hold one)")

    def _segments(self, slot: int) -> list[int]:
        found = []
        for p in self.dir.iterdir():
            m = SEGMENT.fullmatch(p.name)
            if m and int(m.group(1)) == slot:
                found.append(int(m.group(2)))
        return found

    def _path(self, seq: int, slot: int | None = None) -> Path:
        return self.dir / f"spend-{self.slot if slot is None else slot}.{seq}.journal"

    def _open_active(self) -> None:
        path = self._path(self.seq)
        private_file(path)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self.size = os.fstat(self.fd).st_size

    @property
    def total(self) -> int:
        return self.size + sum(self._sizes.values())

    @property
    def end(self) -> Pos:
        return (self.seq, self.size)

    def append(self, line: bytes) -> Pos:
        """One JSON document without its newline; the position after it. Raises JournalFull, or
        OSError (the disk is full): the caller keeps the record another way."""
        data = line + b"\n"
        if self.total + len(data) > self.max_bytes:
            raise JournalFull(self._path(self.seq), self.total, self.max_bytes)
        if self.size >= self.segment_bytes:
            self._rotate()
        n = os.write(self.fd, data)
        if n != len(data):  # the disk is full: take the torn line back, so no record is ever read torn
            os.ftruncate(self.fd, self.size)
            raise OSError(f"short write to the spend journal ({n} of {len(data)} bytes)")
        self.size += n
        self.dirty = True
        return (self.seq, self.size)

    def _rotate(self) -> None:
        self._closed.append(self.seq)
        self._sizes[self.seq] = self.size
        self._retired.append(self.fd)
        self.seq += 1
        self._open_active()

    def delivered(self, pos: Pos) -> Pos:
        """Everything up to `pos` is in the sink: segments before it go, the active one is emptied
        when `pos` is its end. Returns `pos` as it now reads (emptied: the active segment's start)."""
        seq, off = pos
        while self._closed and (self._closed[0] < seq or (self._closed[0] == seq and off >= self._sizes[seq])):
            old = self._closed.pop(0)
            del self._sizes[old]
            self._path(old).unlink(missing_ok=True)
        if seq == self.seq and off >= self.size and self.size:
            os.ftruncate(self.fd, 0)
            self.size = 0
        if seq < self.seq and not self._closed:  # the end of the last closed segment
            return (self.seq, 0)
        return (seq, min(off, self.size)) if seq == self.seq else pos

    def read(self, pos: Pos, max_records: int, end: Pos) -> tuple[list[bytes], Pos]:
        """Records after `pos`, up to `end` (the end when the caller looked), and the position after
        them; at the end of a closed segment, moves on to the next one."""
        seq, off = pos
        while seq < end[0] and off >= self._sizes.get(seq, 0):
            seq, off = seq + 1, 0
        limit = end[1] if seq == end[0] else self._sizes[seq]
        lines, after = read_lines(self._path(seq), off, max_records, limit)
        return lines, (seq, after)

    def sync(self) -> None:
        """fsync what was written (the active segment and rotated ones), closing rotated ones."""
        self.dirty = False
        retired, self._retired = self._retired, []
        for fd in retired:
            os.fsync(fd)
            os.close(fd)
        os.fsync(self.fd)

    def close(self) -> None:
        self.sync()
        os.close(self.fd)
        if not self.size and not self._closed:
            self._path(self.seq).unlink(missing_ok=True)
        os.close(self._lock_fd)

    # --- what other (dead) processes left ------------------------------------------------------

    def adopt_own(self) -> Orphan | None:
        """This slot's segments from before this process started (already locked: ours)."""
        old = sorted(s for s in self._segments(self.slot) if s < self.first)
        if not old:
            return None
        files = [(self._path(s), 0) for s in old]
        return Orphan(os.dup(self._lock_fd), files, f"slot {self.slot} (before this start)")

    def orphans(self) -> list[Orphan]:
        """Locked for us: the segments of every slot no live process holds, and a legacy journal."""
        found: list[Orphan] = []
        names = [p.name for p in self.dir.iterdir()]
        slots = {int(m.group(1)) for n in names if (m := SEGMENT.fullmatch(n))} - {self.slot}
        for slot in sorted(slots):
            fd = _lock(self.dir / f"spend-{slot}.lock")
            if fd is None:
                continue  # a live process's
            seqs = sorted(self._segments(slot))
            if not seqs:
                os.close(fd)
                continue
            found.append(Orphan(fd, [(self._path(s, slot), 0) for s in seqs], f"slot {slot}"))
        legacy = self.dir / LEGACY
        if LEGACY in names:
            fd = _lock(legacy)
            if fd is not None:
                try:
                    start = int((self.dir / (LEGACY + ".offset")).read_text())
                except (FileNotFoundError, ValueError):
                    start = 0
                found.append(Orphan(fd, [(legacy, start)], LEGACY))
        return found
