"""Files the gateway keeps on disk (the SQLite database, the spend journal) are nobody else's: chat
history, key hashes and spend. They are created 0600 whatever the umask (SQLite gives its -wal and
-shm files the database file's mode), and a data directory others can read is warned about."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("clawdbot.state")


def private_file(path: str | os.PathLike[str]) -> None:
    """Create `path` empty with mode 0600 unless it exists; an existing file open to others is
    narrowed to 0600 (with a warning: it held the same data)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileNotFoundError:
        return  # no such directory: whoever opens the file next says so
    except FileExistsError:
        mode = os.stat(path).st_mode
        if mode & 0o077:
            log.warning("%s was readable by other users (mode %o); made it private (0600)", path,
                        stat.S_IMODE(mode))
            os.chmod(path, 0o600)
        return
    os.close(fd)


def warn_if_shared(directory: Path) -> None:
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o077:
        log.warning("data directory %s is open to other users (mode %o): its chats, keys and spend are "
                    "private; run: chmod 700 %s", directory, mode, directory)


def write_private(path: Path, text: str) -> None:
    """Write `path` (replacing it) with mode 0600."""
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
