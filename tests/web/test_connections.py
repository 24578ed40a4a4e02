"""Logical connections (replay windows, expiry, takeover) and the bounded outbox."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from clawdbot.web.auth import ADMIN, LOCAL
from clawdbot.web.connections import Connection, Connections
from clawdbot.web.outbox import Outbox


def seqs(frames: list[str] | None) -> list[int]:
    assert frames is not None
    return [json.loads(f)["seq"] for f in frames]


def test_since_replays_what_is_held() -> None:
    c = Connection(LOCAL, keep_events=3)
    for i in range(5):
        c.emit("chat", {"i": i})
    assert seqs(c.since(2)) == [3, 4, 5] and seqs(c.since(4)) == [5] and c.since(5) == []
    assert c.since(1) is None  # seq 2 is gone
    assert c.since(6) is None and c.since(-1) is None
    assert c.token_matches(c.resume_token) and not c.token_matches("r_x")


def test_outbox_is_bounded_and_cut_once_full() -> None:
    async def body() -> None:
        cut: list[bool] = []
        box = Outbox(max_frames=3, max_chars=100)
        box.on_cut = lambda: cut.append(True)
        assert box.push("x" * 500)  # one frame always fits an empty outbox
        assert await box.take() == ["x" * 500]
        assert all(box.push("y") for _ in range(3))
        assert not box.push("z") and cut == [True] and box.overflowed and box.closed
        assert await box.take() == []
        box2 = Outbox(max_frames=10, max_chars=10)
        assert box2.push("a" * 6) and not box2.push("b" * 6)

    asyncio.run(body())


def test_finish_drains_then_stops() -> None:
    async def body() -> None:
        box = Outbox()
        box.push("1")
        box.push("2")
        box.finish()
        assert not box.push("3")
        assert await box.take(most=1) == ["1"] and await box.take() == ["2"] and await box.take() == []

    asyncio.run(body())


def test_detached_connections_expire_and_a_takeover_cuts_the_old_socket() -> None:
    async def body() -> None:
        conns = Connections(resume_seconds=0.01, keep_events=10)
        c = conns.open(ADMIN)
        assert c is not None
        old, new = Outbox(), Outbox()
        cut: list[str] = []
        old.on_cut = lambda: cut.append("old")
        conns.attach(c, old)
        conns.attach(c, new)  # resumed elsewhere while the old socket lingers
        assert cut == ["old"] and c.outbox is new
        conns.detach(c, old)  # the old socket's late cleanup changes nothing
        assert c.outbox is new and conns.find(c.id) is c
        conns.detach(c, new)
        assert conns.find(c.id) is c  # waiting for a resume
        expired = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, expired.set)
        await expired.wait()
        assert conns.find(c.id) is None

    asyncio.run(body())


def test_full_table_evicts_detached_connections_first() -> None:
    async def body() -> None:
        conns = Connections(resume_seconds=60, keep_events=1, max_connections=2)
        a, b = conns.open(LOCAL), conns.open(LOCAL)
        assert a is not None and b is not None
        conns.attach(a, Outbox())
        conns.attach(b, Outbox())
        assert conns.open(LOCAL) is None  # both attached: refused
        conns.detach(b, b.outbox)  # type: ignore[arg-type]
        c = conns.open(LOCAL)
        assert c is not None and conns.find(b.id) is None and len(conns) == 2
        conns.close()

    asyncio.run(body())


def test_a_run_cancelled_before_its_first_step_still_ends_and_is_stored(tmp_path: Path) -> None:
    from clawdbot.cli.serve import build_app
    from clawdbot.config.schema import Config, Service
    from clawdbot.core.types import ChatRequest, Message
    from clawdbot.observability.access import AccessLog
    from clawdbot.state.memory import MemoryChatStore
    from clawdbot.tenancy.principal import ANONYMOUS
    from clawdbot.web.runs import ChatRun, Runs

    async def body() -> None:
        config = Config(services=[Service(name="m", type="mock")])
        pipeline = build_app(config, AccessLog("text"), env={"CLAWDBOT_DATA_DIR": str(tmp_path)}).pipeline
        store = MemoryChatStore()
        conn = Connection(LOCAL, keep_events=10)
        session = await store.create_session("local", "t", None)
        runs = Runs()
        assert runs.claim(session.id)
        run = ChatRun(pipeline, store, conn, session, "m", ChatRequest("m", [Message("user", "hi")]), ANONYMOUS)
        runs.start(run)
        assert await runs.abort(run.id, "local")  # before the task ever ran
        await runs.close()
        events = [json.loads(f) for f in conn.since(0) or []]
        ends = [e["payload"] for e in events if e["event"] == "chat"]
        assert [e["state"] for e in ends] == ["aborted"]
        assert runs.session_run(session.id) is None and runs.claim(session.id)
        assert [m.status for m in await store.list_messages("local", session.id)] == ["aborted"]
        await pipeline.close()

    asyncio.run(body())
