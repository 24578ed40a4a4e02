"""A bounded, append-only file of records (spend records) the sink could not take yet, replayed in order.

One JSON line per record; each appended batch is fsynced before `append` returns, so a record the
writer has handed over survives a crash. Replay progress is kept in `<path>.offset` (written to a
temporary file and renamed), so a restart resumes after the last batch the sink accepted; a batch
being replayed when the process died is delivered again, which the sink absorbs by record id.
When everything is replayed the file is truncated. The file never grows past `max_bytes`:
`append` raises `JournalFull` instead, and the caller keeps the records (it never drops them).

Blocking file I/O: the async writer calls these methods through `asyncio.to_thread`.
"""

from __future__ import annotations

import os
from pathlib import Path

from clawdbot.state.files import private_file, write_private


class JournalFull(Exception):
    def __init__(self, path: Path, size: int, max_bytes: int) -> None:
        super().__init__(f"journal {path} is full ({size} of {max_bytes} bytes): its records are held in memory")
        self.path = path


class Journal:
    def __init__(self, path: str | os.PathLike[str], max_bytes: int = 64 * 1024 * 1024) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._offset_path = self.path.with_name(self.path.name + ".offset")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        private_file(self.path)  # spend by key: nobody else's business
        self._recover()

    def _recover(self) -> None:
        """Drop a torn last line (a crash mid-append: that batch was never acknowledged) and read the offset."""
        with open(self.path, "a+b") as f:
            size = f.seek(0, os.SEEK_END)
            if size:
                f.seek(max(0, size - 1))
                if f.read(1) != b"\n":
                    f.seek(0)
                    data = f.read()
                    f.truncate(data.rfind(b"\n") + 1)
                    os.fsync(f.fileno())
            self.size = f.seek(0, os.SEEK_END)
        try:
            self.offset = int(self._offset_path.read_text())
        except (FileNotFoundError, ValueError):
            self.offset = 0
        if self.offset > self.size:  # the file was truncated after a full replay, the offset not yet reset
            self.offset = 0

    @property
    def pending(self) -> bool:
        return self.offset < self.size

    def append(self, lines: list[bytes]) -> None:
        """Each line is one JSON document without its newline."""
        data = b"".join(line + b"\n" for line in lines)
        if self.size + len(data) > self.max_bytes:
            raise JournalFull(self.path, self.size, self.max_bytes)
        with open(self.path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self.size += len(data)

    def read(self, max_records: int) -> tuple[list[bytes], int]:
        """The next lines after the offset, oldest first, and the offset after them (for `commit`)."""
        records: list[bytes] = []
        offset = self.offset
        with open(self.path, "rb") as f:
            f.seek(offset)
            while len(records) < max_records and offset < self.size:
                line = f.readline()
                offset += len(line)
                records.append(line.rstrip(b"\n"))
        return records, offset

    def commit(self, offset: int) -> None:
        """The sink took everything before `offset`."""
        if offset >= self.size:
            with open(self.path, "r+b") as f:
                f.truncate(0)
                os.fsync(f.fileno())
            self.size = 0
            self.offset = 0
            self._offset_path.unlink(missing_ok=True)
            return
        tmp = self._offset_path.with_name(self._offset_path.name + ".tmp")
        write_private(tmp, str(offset))
        os.replace(tmp, self._offset_path)
        self.offset = offset
