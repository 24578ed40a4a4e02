"""What the gateway writes to disk is private: the SQLite database (and its WAL files) and the spend
journal are 0600 whatever the umask; a data directory open to others is warned about."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

import pytest

from clawdbot.config.schema import Config
from clawdbot.state.build import build_chat_store, data_dir, database_url
from clawdbot.tenancy.journal import Journal


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture()
def open_umask() -> object:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_database_and_journal_files_are_0600(tmp_path: Path, open_umask: object) -> None:
    config = Config(data_dir=str(tmp_path / "data"))
    url = database_url(config, {})

    async def use() -> None:
        store = build_chat_store(url)
        await store.start()
        s = await store.create_session("u", "t", None)
        await store.add_message("u", s.id, "user", "hello", None)
        await store.close()

    asyncio.run(use())
    files = [p for p in (tmp_path / "data").iterdir() if p.name.startswith("clawdbot.db")]
    assert files and all(mode(p) == 0o600 for p in files), {p.name: oct(mode(p)) for p in files}
    assert mode(tmp_path / "data") == 0o700
    journal = Journal(tmp_path / "data")
    journal.append(b'{"x":1}')
    assert mode(tmp_path / "data" / "spend-0.0.journal") == 0o600
    assert mode(tmp_path / "data" / "spend-0.lock") == 0o600
    journal.close()


def test_files_open_to_others_are_narrowed_and_a_shared_directory_is_warned_about(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    old = shared / "spend-0.lock"
    old.write_text("")
    os.chmod(old, 0o644)
    with caplog.at_level(logging.WARNING):
        assert data_dir(Config(data_dir=str(shared)), {}) == shared
        Journal(shared).close()
    assert "open to other users" in caplog.text and "chmod 700" in caplog.text
    assert mode(old) == 0o600 and "made it private" in caplog.text
    assert mode(shared) == 0o755  # a directory shared on purpose is the operator's to change
