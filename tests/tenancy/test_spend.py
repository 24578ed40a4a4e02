"""The spend writer and its journal: every record reaches the sink exactly once, in order, whatever
fails in between: the database, the queue's room, the disk's, or the process itself (SIGKILL)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clawdbot.state.spend_base import SpendRecord
from clawdbot.tenancy.journal import Journal
from clawdbot.tenancy.spend import SpendOverflow, SpendWriter, new_record_id, now_ms


class Table:
    """A sink that behaves like the SQL one: a primary key on the record id, and it can be down."""

    def __init__(self) -> None:
        self.down = False
        self.rows: dict[str, SpendRecord] = {}  # insertion order is delivery order
        self.duplicates = 0
        self.calls = 0
        self.arrived = asyncio.Event()
        self.expect = 0

    async def __call__(self, batch: list[SpendRecord]) -> None:
        self.calls += 1
        if self.down:
            raise ConnectionError("database is down")
        for rec in batch:
            if rec.id in self.rows:
                self.duplicates += 1  # ON CONFLICT DO NOTHING
            else:
                self.rows[rec.id] = rec
        if len(self.rows) >= self.expect:
            self.arrived.set()


def records(n: int, start: int = 0) -> list[SpendRecord]:
    return [
        SpendRecord(new_record_id(), now_ms(), "gpt-4o", 10 + i, 5, 100 + i, key_id="k", user_id="u")
        for i in range(start, start + n)
    ]


def journal_files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".journal"))


def test_failing_sink_then_recovery_keeps_every_record_in_order(tmp_path: Path) -> None:
    async def main() -> None:
        table = Table()
        writer = SpendWriter(table, Journal(tmp_path), batch_size=16, flush_interval_s=3600)
        sent = records(100)
        table.down = True
        for rec in sent[:60]:
            writer.record(rec)
        await writer.flush()
        assert writer.behind and writer.backlog == 0 and not table.rows and writer.sink_failures == 1
        for rec in sent[60:90]:
            writer.record(rec)
        await writer.flush()  # the sink is retried (and fails): the new records wait in the journal behind the rest
        assert not table.rows
        table.down = False
        for rec in sent[90:]:
            writer.record(rec)
        await writer.flush()
        assert list(table.rows.values()) == sent  # record for record, in order
        assert table.duplicates == 0 and not writer.pending and writer.replayed == 100
        assert (tmp_path / "spend-0.0.journal").stat().st_size == 0  # all delivered: emptied
        await writer.close()
        assert journal_files(tmp_path) == []  # an empty journal is not left behind

    asyncio.run(main())


def test_a_queue_that_fills_falls_back_to_the_journal_and_loses_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        table = Table()
        writer = SpendWriter(table, Journal(tmp_path), max_queue=10, batch_size=4, flush_interval_s=3600)
        sent = records(50)
        for rec in sent:
            writer.record(rec)  # past max_queue: behind, not refused (the journal holds them)
        assert writer.behind and writer.overflows == 0
        await writer.flush()
        assert list(table.rows.values()) == sent and table.duplicates == 0 and not writer.behind
        writer.record(extra := records(1)[0])  # caught up: the queue again
        await writer.flush()
        assert list(table.rows)[-1] == extra.id and writer.delivered == 1
        await writer.close()

    asyncio.run(main())


def test_segments_rotate_and_are_deleted_once_delivered(tmp_path: Path) -> None:
    async def main() -> None:
        table = Table()
        writer = SpendWriter(table, Journal(tmp_path, segment_bytes=1000), batch_size=7, flush_interval_s=3600)
        table.down = True
        sent = records(60)
        for rec in sent:
            writer.record(rec)
        await writer.flush()
        assert len(journal_files(tmp_path)) > 5  # ~200 bytes a record: many segments
        table.down = False
        await writer.flush()
        assert list(table.rows.values()) == sent and table.duplicates == 0
        assert len(journal_files(tmp_path)) == 1 and (tmp_path / journal_files(tmp_path)[0]).stat().st_size == 0
        await writer.close()

    asyncio.run(main())


def test_graceful_stop_with_the_database_down_then_a_restart_loses_nothing(tmp_path: Path) -> None:
    sent = records(130)

    async def before_restart() -> None:
        table = Table()
        table.down = True
        writer = SpendWriter(table, Journal(tmp_path), batch_size=50, flush_interval_s=3600)
        writer.start()
        for rec in sent[:120]:
            writer.record(rec)
        await writer.close()  # graceful shutdown while the database is down: it all stays in the journal
        assert not table.rows and journal_files(tmp_path) == ["spend-0.0.journal"]

    async def after_restart() -> Table:
        table = Table()
        table.expect = 130
        journal = Journal(tmp_path)
        assert journal.slot == 0 and journal.seq == 1  # its own slot again; a new segment
        writer = SpendWriter(table, journal, batch_size=50, flush_interval_s=0.01)
        writer.start()
        for rec in sent[120:]:
            writer.record(rec)
        await asyncio.wait_for(table.arrived.wait(), 10)
        await writer.close()
        return table

    asyncio.run(before_restart())
    table = asyncio.run(after_restart())
    assert sorted(table.rows) == sorted(r.id for r in sent) and table.duplicates == 0
    assert journal_files(tmp_path) == []


CHILD = textwrap.dedent("""
    import asyncio, sys
    from clawdbot.state.spend_base import SpendRecord
    from clawdbot.tenancy.journal import Journal
    from clawdbot.tenancy.spend import SpendWriter

    async def never(batch):  # the database never answers before the kill
        await asyncio.Event().wait()

    async def main():
        writer = SpendWriter(never, Journal(sys.argv[1]), flush_interval_s=3600)
        writer.start()
        for i in range(int(sys.argv[2])):
            writer.record(SpendRecord(f"sp_{i:04d}", 1, "m", 1, 1, 7, key_id="k"))
        print("recorded", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
""")


def killed_child(directory: Path, n: int) -> None:
    """A process that records n spend records, and is killed with SIGKILL before any reaches a database."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(directory), str(n)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "recorded"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL


def test_a_process_killed_with_sigkill_loses_no_record_another_process_delivers_them(tmp_path: Path) -> None:
    async def main() -> None:
        live = Journal(tmp_path)  # a process that stays up holds slot 0
        table = Table()
        writer = SpendWriter(table, live, flush_interval_s=3600)
        killed_child(tmp_path, 300)  # slot 1, killed
        assert "spend-1.0.journal" in journal_files(tmp_path)
        await writer.flush()  # adopts the dead slot's journal: delivered, then deleted
        assert sorted(table.rows) == [f"sp_{i:04d}" for i in range(300)] and table.duplicates == 0
        assert journal_files(tmp_path) == ["spend-0.0.journal"]
        await writer.close()

    asyncio.run(main())


def test_a_restart_after_sigkill_delivers_its_own_journal(tmp_path: Path) -> None:
    killed_child(tmp_path, 50)

    async def main() -> None:
        table = Table()
        journal = Journal(tmp_path)
        assert journal.slot == 0  # the dead process's slot, taken again
        writer = SpendWriter(table, journal, flush_interval_s=3600)
        await writer.flush()
        assert sorted(table.rows) == [f"sp_{i:04d}" for i in range(50)]
        await writer.close()
        assert journal_files(tmp_path) == []

    asyncio.run(main())


def test_live_processes_never_share_a_slot_nor_adopt_each_others_journal(tmp_path: Path) -> None:
    async def main() -> None:
        a, b = Journal(tmp_path), Journal(tmp_path)
        assert (a.slot, b.slot) == (0, 1)
        ta, tb = Table(), Table()
        wa, wb = SpendWriter(ta, a, flush_interval_s=3600), SpendWriter(tb, b, flush_interval_s=3600)
        tb.down = True
        sent = records(5)
        for rec in sent:
            wb.record(rec)
        await wb.flush()  # b is behind: its records stay in its journal
        await wa.flush()
        assert not ta.rows  # slot 1 is locked by a live process: not a's to take
        tb.down = False
        await wb.flush()
        assert list(tb.rows.values()) == sent
        await wa.close()
        await wb.close()

    asyncio.run(main())


def test_the_journal_of_an_earlier_version_is_delivered_from_its_offset(tmp_path: Path) -> None:
    sent = records(6)
    import msgspec

    lines = [msgspec.json.encode(r) + b"\n" for r in sent]
    (tmp_path / "spend.journal").write_bytes(b"".join(lines) + b'{"torn')
    (tmp_path / "spend.journal.offset").write_text(str(len(lines[0]) + len(lines[1])))

    async def main() -> None:
        table = Table()
        writer = SpendWriter(table, Journal(tmp_path), flush_interval_s=3600)
        await writer.flush()
        assert list(table.rows.values()) == sent[2:]  # the first two were delivered before
        assert not (tmp_path / "spend.journal").exists() and not (tmp_path / "spend.journal.offset").exists()
        await writer.close()

    asyncio.run(main())


def test_a_full_journal_holds_records_in_memory_then_refuses_never_drops(tmp_path: Path) -> None:
    async def main() -> None:
        table = Table()
        table.down = True
        journal = Journal(tmp_path, max_bytes=2000)
        writer = SpendWriter(table, journal, max_queue=20, batch_size=10, flush_interval_s=3600)
        sent = records(30)
        for rec in sent:
            writer.record(rec)
        assert 0 < writer.backlog < 30 and writer.journal_refusals == writer.backlog  # only these are in memory
        room = writer.max_queue - writer.backlog
        more = records(room + 1, 100)
        for rec in more[:room]:
            writer.record(rec)
        with pytest.raises(SpendOverflow):
            writer.record(more[room])
        assert writer.overflows == 1
        forced = records(1, 200)[0]
        writer.record(forced, force=True)  # an answered request's record: kept past the bound
        await writer.flush()
        assert not table.rows
        table.down = False
        await writer.flush()
        assert set(table.rows) == {r.id for r in [*sent, *more[:room], forced]} and table.duplicates == 0
        assert writer.backlog == 0 and not writer.pending
        await writer.close()

    asyncio.run(main())


def test_batches_flush_when_full_without_waiting_for_the_timer(tmp_path: Path) -> None:
    async def main() -> None:
        table = Table()
        table.expect = 32
        writer = SpendWriter(table, Journal(tmp_path), batch_size=32, flush_interval_s=3600)
        writer.start()
        for rec in records(32):
            writer.record(rec)
        await asyncio.wait_for(table.arrived.wait(), 10)
        assert table.calls == 1 and writer.delivered == 32
        await writer.close()

    asyncio.run(main())


def test_journal_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        journal = Journal(tmp_path)
        journal.append(b'{"x":1}')
    finally:
        os.umask(old)
    for p in tmp_path.iterdir():
        assert p.stat().st_mode & 0o077 == 0, p.name
    journal.close()
