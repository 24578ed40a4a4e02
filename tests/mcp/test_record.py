"""mcp/record.py: an MCP call as a request-log record, its bodies masked by the real pii plugin, cut
at max_body_bytes, and left out when the plugin blocks them or too many wait to be masked."""

from __future__ import annotations

import asyncio
from typing import Any

import mcp_types as types
import msgspec

from clawdbot.config.schema import RequestLog as Settings
from clawdbot.mcp import calls, record
from clawdbot.mcp.record import CallRecords, Done
from clawdbot.observability.request_log import RequestLog
from clawdbot.plugins.base import Plugin
from clawdbot.plugins.pii import PiiPlugin
from clawdbot.state.request_log_base import RequestRecord, from_row
from clawdbot.state.request_log_memory import MemoryRequestLogStore
from clawdbot.tenancy.principal import Principal

EMAIL = "bob@example.org"
KEY = Principal(kind="virtual", key_id="k_1", user_id="u_1", team_id="t_1", metadata={"log_bodies": True})


def pii(**settings: Any) -> Plugin:
    return PiiPlugin({"types": ["EMAIL"], **settings}, None)  # type: ignore[arg-type]


def done(result: Any = None, **kw: Any) -> Done:
    fields: dict[str, Any] = {"request_id": "r-1", "principal": KEY, "event": calls.CALL, "server": "peer",
                              "name": "echo", "status": calls.OK, "seconds": 0.01, "result_bytes": 42,
                              "arguments": {"text": f"to {EMAIL}"}, "result": result, **kw}
    return Done(**fields)


def text_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


async def logged(plugins: list[Plugin], d: Done, max_body_bytes: int = 10_000) -> list[RequestRecord]:
    log = RequestLog(Settings(enabled=True, max_body_bytes=max_body_bytes), MemoryRequestLogStore(100))
    records = CallRecords(log, lambda: plugins)
    records.add(d)
    await records.close()
    return [from_row(r) for r in log._queue]


def test_a_call_is_a_record_with_its_bodies_masked() -> None:
    [rec] = asyncio.run(logged([pii()], done(text_result(f"sent to {EMAIL}"))))
    assert rec.id == "r-1" and rec.path == "/mcp" and rec.method == "tools/call" and rec.status == 200
    assert rec.key_id == "k_1" and rec.user_id == "u_1" and rec.team_id == "t_1" and rec.principal == "k_1"
    assert rec.model == "peer.echo" and rec.service == "peer" and rec.upstream_model == "echo"
    assert rec.attempts == [{"service": "peer", "model": "echo", "ok": True, "error": None, "status": 200,
                             "ms": 10.0, "result_bytes": 42}]
    assert rec.request_body is not None and rec.response_body is not None
    assert msgspec.json.decode(rec.request_body) == {"text": "to <EMAIL_1>"}
    assert "<EMAIL_1>" in rec.response_body and EMAIL not in rec.response_body
    assert rec.plugins == ["pii: masked 1 item (EMAIL 1)", "pii: masked 1 item (EMAIL 1)"]


def test_without_pii_the_bodies_are_kept_as_they_were_and_cut_at_the_limit() -> None:
    [rec] = asyncio.run(logged([], done(text_result("y" * 500)), max_body_bytes=100))
    assert rec.request_body == f'{{"text":"to {EMAIL}"}}'
    assert rec.body_truncated and rec.response_body is not None and len(rec.response_body) == 100


def test_a_blocking_pii_plugin_leaves_the_bodies_out() -> None:
    [rec] = asyncio.run(logged([pii(mode="block")], done(text_result("ok"))))
    assert rec.request_body is None and rec.response_body is None
    assert rec.plugins is not None and "mcp: bodies left out (PiiBlocked)" in rec.plugins


def test_failures_map_to_statuses_and_an_unknown_name_is_not_kept() -> None:
    row = record.row(done(status=calls.UNKNOWN, server="", name="", arguments=None))
    rec = from_row(row)
    assert rec.status == 404 and rec.model is None and rec.error_code == "unknown_tool" and rec.attempts is None
    rec = from_row(record.row(done(status=calls.TIMEOUT, event=calls.RESOURCE, name="note://x")))
    assert rec.status == 504 and rec.method == "resources/read" and rec.model == "peer.note://x"
    rec = from_row(record.row(done(status=calls.TOOL_ERROR)))
    assert rec.status == 200 and rec.error == "tool_error" and rec.error_code is None


def test_too_many_waiting_to_be_masked_are_kept_without_bodies() -> None:
    async def run() -> list[RequestRecord]:
        log = RequestLog(Settings(enabled=True), MemoryRequestLogStore(1000))
        records = CallRecords(log, lambda: [pii()])
        for _ in range(record.MAX_MASKING + 3):
            records.add(done(text_result("ok")))
        await records.close()
        return [from_row(r) for r in log._queue]

    recs = asyncio.run(run())
    assert len(recs) == record.MAX_MASKING + 3
    assert sum(r.request_body is None for r in recs) == 3


def test_nothing_is_built_with_the_log_off() -> None:
    async def run() -> int:
        log = RequestLog(Settings(enabled=False), None)
        records = CallRecords(log, lambda: [])
        assert not records.on and not records.wants_bodies(KEY)
        records.add(done())
        await records.close()
        return log.backlog

    assert asyncio.run(run()) == 0


def test_a_huge_result_is_bounded_before_it_is_masked_then_cut() -> None:
    text = f"{EMAIL} " + "word " * 200_000  # 1 MB
    [rec] = asyncio.run(logged([pii()], done(text_result(text)), max_body_bytes=200))
    assert rec.body_truncated and rec.response_body is not None and len(rec.response_body) == 200
    assert "<EMAIL_1>" in rec.response_body and EMAIL not in rec.response_body
    straddling = "a" * 4480 + ' "bob.the.builder@example.org"'  # the bound (4496) falls inside the address
    assert record._bound(straddling, 100) == "a" * 4480 + " "  # never a value cut in two
    assert len(record._bound("x" * 10_000, 100) or "") == 4 * 100 + 4096
