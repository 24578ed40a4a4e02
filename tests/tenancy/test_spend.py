from __future__ import annotations

import asyncio
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


def test_failing_sink_then_recovery_keeps_every_record_in_order(tmp_path: Path) -> None:
    async def main() -> None:
        table = Table()
        writer = SpendWriter(table, Journal(tmp_path / "spend.jsonl"), batch_size=16, flush_interval_s=3600)
        sent = records(100)
        table.down = True
        for rec in sent[:60]:
            writer.record(rec)
        await writer.flush()
        assert writer.journal_pending and writer.backlog == 0 and not table.rows
        for rec in sent[60:90]:
            writer.record(rec)
        await writer.flush()  # the sink is retried (and fails): the new records queue up behind the journal
        assert writer.journaled == 90 and not table.rows
        table.down = False
        for rec in sent[90:]:
            writer.record(rec)
        await writer.flush()
        assert list(table.rows.values()) == sent  # record for record, in order
        assert table.duplicates == 0 and not writer.journal_pending and writer.replayed == 90
        assert sum(r.cost for r in table.rows.values()) == sum(r.cost for r in sent)
        assert (tmp_path / "spend.jsonl").stat().st_size == 0
        await writer.close()

    asyncio.run(main())


def test_restart_in_between_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "spend.jsonl"
    sent = records(130)

    async def before_restart() -> None:
        table = Table()
        table.down = True
        writer = SpendWriter(table, Journal(path), batch_size=50, flush_interval_s=3600)
        writer.start()
        for rec in sent[:120]:
            writer.record(rec)
        await writer.close()  # graceful shutdown while the database is down: all of it to the journal
        assert writer.journaled == 120 and not table.rows

    async def after_restart() -> Table:
        table = Table()
        table.expect = 130
        writer = SpendWriter(table, Journal(path), batch_size=50, flush_interval_s=0.01)
        writer.start()
        for rec in sent[120:]:
            writer.record(rec)
        await asyncio.wait_for(table.arrived.wait(), 10)
        await writer.close()
        return table

    asyncio.run(before_restart())
    table = asyncio.run(after_restart())
    assert list(table.rows.values()) == sent and table.duplicates == 0


def test_crash_mid_replay_redelivers_only_the_unacknowledged_batch(tmp_path: Path) -> None:
    path = tmp_path / "spend.jsonl"
    sent = records(10)
    journal = Journal(path)
    journal.append([r.id.encode() for r in sent])  # any JSON-line payload; here just the ids
    lines, offset = journal.read(4)
    assert [line.decode() for line in lines] == [r.id for r in sent[:4]]
    journal.commit(offset)
    with open(path, "ab") as f:
        f.write(b'{"torn')  # the process died mid-append
    reopened = Journal(path)
    assert reopened.offset == offset and reopened.pending
    rest, end = reopened.read(100)
    assert [line.decode() for line in rest] == [r.id for r in sent[4:]]
    reopened.commit(end)
    assert not reopened.pending and path.stat().st_size == 0 and not Journal(path).pending


def test_full_queue_and_full_journal_never_drop_silently(tmp_path: Path) -> None:
    async def main() -> None:
        table = Table()
        table.down = True
        journal = Journal(tmp_path / "spend.jsonl", max_bytes=2000)
        writer = SpendWriter(table, journal, max_queue=40, batch_size=10, flush_interval_s=3600)
        sent = records(40)
        for rec in sent:
            writer.record(rec)
        with pytest.raises(SpendOverflow):
            writer.record(records(1)[0])
        assert writer.overflows == 1
        await writer.flush()
        assert writer.journal_full == 1 and 0 < writer.journaled < 40
        assert writer.journaled + writer.backlog == 40  # the rest is still held in memory
        table.down = False
        await writer.flush()
        assert list(table.rows.values()) == sent and table.duplicates == 0
        await writer.close()

    asyncio.run(main())


def test_batches_flush_when_full_without_waiting_for_the_timer(tmp_path: Path) -> None:
    async def main() -> None:
        table = Table()
        table.expect = 32
        writer = SpendWriter(table, Journal(tmp_path / "spend.jsonl"), batch_size=32, flush_interval_s=3600)
        writer.start()
        for rec in records(32):
            writer.record(rec)
        await asyncio.wait_for(table.arrived.wait(), 10)
        assert table.calls == 1 and writer.delivered == 32
        await writer.close()

    asyncio.run(main())
