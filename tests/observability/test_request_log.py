"""The request log's moving parts in one process: the bounded queue (full: dropped and counted, never
blocking), the writer's batches and pruning, a failing database, which requests keep bodies, the
live stream's bounds (subscribers, a slow reader dropped), the body capture and reading an answer
back from whatever dialect it was kept in, and the admin API's query parsing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

import msgspec
import pytest

from clawdbot.api.admin_requests import answer_text, decode_cursor, encode_cursor, parse_query
from clawdbot.config.schema import Config, ModelEntry
from clawdbot.config.schema import RequestLog as Settings
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import BadRequest
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, Message, Usage
from clawdbot.observability.request_hub import Hub, TooManySubscribers
from clawdbot.observability.request_log import RequestLog, body_models, build_record
from clawdbot.pipeline.capture import BodyCapture
from clawdbot.providers.base import RawResponse
from clawdbot.state.request_log_base import RequestPage, RequestQuery, RequestRecord, Row, from_row
from clawdbot.tenancy.principal import Principal

CHAT = "/v1/chat/completions"


class FakeStore:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[Row]] = []
        self.prunes: list[int] = []
        self.fail = fail
        self.closed = False
        self.pruned = asyncio.Event()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self.closed = True

    async def write(self, rows: list[Row]) -> int:
        if self.fail:
            raise ConnectionError("database down")
        self.batches.append(rows)
        return len(rows) // 2  # as if the row budget pushed out half as many old ones

    async def query(self, q: RequestQuery) -> RequestPage:
        return RequestPage(records=[], next_cursor=None)

    async def get(self, id: str) -> RequestRecord | None:
        return None

    async def prune(self, older_than: int) -> int:
        self.prunes.append(older_than)
        self.pruned.set()
        return 3


def ctx(rid: str = "r1", model: str = "chat", identity: Any = None) -> RequestContext:
    c = RequestContext(rid, model=model, service="oa", upstream_model="mock-a", prompt_tokens=3,
                       completion_tokens=4, identity=identity, cost_micros=12, plugin_notes=["cache: miss"])
    c.attempts.append({"service": "oa", "model": "mock-a", "ok": True, "status": 200, "ms": 1.0})
    return c


def settings(**kw: Any) -> Settings:
    return Settings(enabled=True, **kw)


def test_record_fields() -> None:
    p = Principal(kind="key", key_id="k_1", user_id="u_1", team_id="t_1")
    c = ctx(identity=p)
    c.principal, c.error, c.error_code = "k_1", "x" * 5000, "boom"
    rec = build_record(c, "POST", CHAT, 502)
    assert (rec.key_id, rec.user_id, rec.team_id, rec.principal) == ("k_1", "u_1", "t_1", "k_1")
    assert rec.status == 502 and rec.cost_micros == 12 and rec.plugins == ["cache: miss"]
    assert len(rec.error or "") == 1000 and rec.error_code == "boom" and rec.latency_ms >= 0
    assert rec.attempts == [{"service": "oa", "model": "mock-a", "ok": True, "status": 200, "ms": 1.0}]


def test_a_full_queue_drops_and_counts_never_blocks() -> None:
    log = RequestLog(settings(max_queue=3, batch_size=100), FakeStore())
    for i in range(5):
        log.record(ctx(f"r{i}"), "POST", CHAT, 200)
    assert log.backlog == 3 and log.dropped == 2
    log.record(ctx("h"), "GET", "/healthz", 200)  # not a model request: not logged
    log.record(ctx("a"), "GET", "/admin/api/keys", 200)
    assert log.backlog == 3 and log.dropped == 2


def test_off_stores_nothing_and_keeps_no_bodies() -> None:
    store = FakeStore()
    log = RequestLog(Settings(enabled=False), store)
    assert log.store is None and not log.enabled
    log.record(ctx(), "POST", CHAT, 200)
    assert log.backlog == 0 and not log.wants_bodies(ctx(), "chat")


def test_which_requests_keep_bodies() -> None:
    config = msgspec.convert({"models": {"a": {"targets": ["oa"], "log_bodies": True}, "b": ["oa"],
                                         "c": {"targets": ["oa"]}}}, Config)
    assert body_models(config) == frozenset({"a"})
    assert isinstance(config.models["c"], ModelEntry)
    log = RequestLog(settings(), FakeStore(), body_models(config))
    assert log.wants_bodies(ctx(), "a") and not log.wants_bodies(ctx(), "b")
    keyed = Principal(kind="key", key_id="k", metadata={"log_bodies": True})
    assert log.wants_bodies(ctx(identity=keyed), "b")
    assert not log.wants_bodies(ctx(identity=Principal(kind="key", metadata={"log_bodies": "yes"})), "b")


def test_writer_batches_prunes_and_flushes_at_close() -> None:
    async def main() -> None:
        store = FakeStore()
        log = RequestLog(settings(batch_size=2, flush_interval=0.01, retention_hours=2), store)
        started = time.time()
        log.start()
        for i in range(5):
            log.record(ctx(f"r{i}"), "POST", CHAT, 200)
        async with asyncio.timeout(5):
            await store.pruned.wait()  # the first prune comes right after the first batch written
        assert log.written >= 2
        await log.flush()
        assert [len(b) for b in store.batches] == [2, 2, 1]
        assert [row[0] for b in store.batches for row in b] == [f"r{i}" for i in range(5)]
        # the retention's cutoff: two hours before the pass
        assert int((started - 7200) * 1000) - 1 <= store.prunes[0] <= (time.time() - 7200) * 1000
        assert log.pruned == 3 * len(store.prunes) + 1 + 1 + 0  # the passes', and the budget's: 2 // 2, 2 // 2, 1 // 2
        log.record(ctx("last"), "POST", CHAT, 200)
        await log.close()  # what is queued is written before the store closes
        assert store.batches[-1][-1][0] == "last" and store.closed

    asyncio.run(main())


def test_a_failing_database_drops_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        store = FakeStore(fail=True)
        log = RequestLog(settings(batch_size=10), store)
        for i in range(3):
            log.record(ctx(f"r{i}"), "POST", CHAT, 200)
        await log.flush()
        assert log.dropped == 3 and log.write_failures == 1 and log.written == 0 and log.backlog == 0
        store.fail = False
        log.record(ctx("ok"), "POST", CHAT, 200)
        await log.flush()
        assert log.written == 1

    asyncio.run(main())
    assert "writing 3 records failed" in caplog.text and "writing again" in caplog.text


def test_bodies_go_to_the_store_not_to_the_live_stream() -> None:
    async def main() -> None:
        log = RequestLog(settings(), FakeStore())
        sub = log.hub.subscribe(RequestQuery())
        c = ctx()
        c.capture = BodyCapture(1000)
        c.capture.sent(ChatRequest(model="chat", messages=[Message(role="user", content="hi")]))
        c.capture.took(RawResponse(status=200, content_type="application/json", body=b'{"choices": []}'))
        log.record(c, "POST", CHAT, 200)
        live = sub.queue.get_nowait()
        assert live is not None and live.request_body is None and live.response_body is None
        stored = from_row(log._queue[0])
        assert stored.request_body is not None and '"hi"' in stored.request_body
        assert stored.response_body == '{"choices": []}' and c.capture is None

    asyncio.run(main())


def test_live_stream_bounds() -> None:
    async def main() -> None:
        hub = Hub(max_subscribers=2, queue_size=3)
        slow = hub.subscribe(RequestQuery())
        errors_only = hub.subscribe(RequestQuery(errors=True))
        with pytest.raises(TooManySubscribers):
            hub.subscribe(RequestQuery())
        for i in range(4):
            hub.publish(build_record(ctx(f"r{i}"), "POST", CHAT, 200))
        # the slow reader fell 3 behind: dropped, its queue freed, its stream told to end
        assert slow.dropped and hub.subscribers == [errors_only] and hub.dropped == 1
        assert slow.queue.get_nowait() is None and slow.queue.empty()
        hub.publish(build_record(ctx("bad"), "POST", CHAT, 503))
        got = errors_only.queue.get_nowait()
        assert got is not None and got.id == "bad" and errors_only.queue.empty()
        hub.subscribe(RequestQuery())  # room again
        hub.close()
        assert errors_only.queue.get_nowait() is None and hub.subscribers == []

    asyncio.run(main())


async def _items(*items: Any) -> AsyncGenerator[Any, None]:
    for x in items:
        yield x


def test_capture_of_a_passed_through_stream_is_capped() -> None:
    async def main() -> None:
        cap = BodyCapture(limit=40)
        raw = RawResponse(status=200, content_type="text/event-stream", chunks=_items(b"b" * 30, b"c" * 30))
        out = cap.took((raw, b"a" * 5))
        assert out[0] is raw
        assert raw.chunks is not None
        relayed = [x async for x in raw.chunks]
        assert relayed == [b"b" * 30, b"c" * 30]  # the client gets every byte
        _, answer, cut = cap.bodies()
        assert answer == "a" * 5 + "b" * 30 + "c" * 5 and cut

    asyncio.run(main())


def test_capture_of_canonical_answers() -> None:
    async def main() -> None:
        cap = BodyCapture(limit=10_000)
        cap.sent(ChatRequest(model="chat", messages=[Message(role="user", content="q")], stream=True,
                             max_tokens=5, limit_field="max_completion_tokens"))
        it, _ = cap.took((_items(ChatChunk(content=" world"), ChatChunk(finish_reason="stop",
                                                                             usage=Usage(1, 2))),
                              ChatChunk(content="hello", role="assistant")))
        assert [c.content async for c in it] == [" world", None]
        request, answer, cut = cap.bodies()
        assert request is not None and '"max_completion_tokens":5' in request and not cut
        assert answer_text(answer) == "hello world"
        whole = BodyCapture(limit=10_000)
        whole.took(ChatResponse(id="x", model="m", created=0, message=Message(role="assistant", content="ok")))
        assert answer_text(whole.bodies()[1]) == "ok"

    asyncio.run(main())


@pytest.mark.parametrize(("body", "text"), [
    ('{"choices": [{"message": {"role": "assistant", "content": "hi"}}]}', "hi"),
    ('data: {"choices": [{"delta": {"content": "a"}}]}\n\ndata: {"choices": [{"delta": {"content": "b"}}]}\n\n'
     "data: [DONE]\n\n", "ab"),
    ('{"content": [{"type": "text", "text": "claude"}], "role": "assistant"}', "claude"),
    ('event: content_block_delta\ndata: {"type": "content_block_delta", "delta": {"type": "text_delta", '
     '"text": "x"}}\n\n', "x"),
    ('{"message": {"role": "assistant", "content": "ol"}, "done": false}\n{"message": {"content": "la"}, '
     '"done": true}\n', "olla"),
    ('{"response": "gen"}', "gen"),
    ("", None),
    ("not json at all", None),
])
def test_answer_text_in_every_dialect(body: str, text: str | None) -> None:
    assert answer_text(body) == text


def test_query_parsing() -> None:
    q = parse_query({"since": "2026-03-01T00:00:00Z", "until": "1780000000000", "status": "5xx", "errors": "true",
                     "min_latency_ms": "250.5", "limit": "7", "key_id": "k_1", "model": "m"})
    assert q.since == 1_772_323_200_000 and q.until == 1_780_000_000_000 and q.status_class == 5
    assert q.errors and q.min_latency_ms == 250.5 and q.limit == 7 and q.key_id == "k_1" and q.model == "m"
    assert parse_query({"status": "404"}).status == 404
    assert parse_query({"since": "2026-03-01"}).since == 1_772_323_200_000  # a date: UTC midnight
    cursor = encode_cursor((1_780_000_000_000, 42))
    assert cursor is not None and decode_cursor(cursor) == (1_780_000_000_000, 42)
    assert parse_query({"cursor": cursor}).cursor == (1_780_000_000_000, 42)
    for bad in ({"cursor": "x"}, {"cursor": encode_cursor((1, 2)) + "AA"}, {"status": "2xxx"},  # type: ignore[operator]
                {"stream": "1"}, {"key_id": ""}):
        with pytest.raises(BadRequest):
            parse_query(bad)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("max_rows", 7, "request_log.max_rows must be at least 8"),
    ("batch_size", 0, "request_log.batch_size must be at least 1"),
    ("retention_hours", 0.0, "request_log.retention_hours must be more than 0"),
    ("max_subscribers", -1, "request_log.max_subscribers must be 0 or more"),
])
def test_settings_that_cannot_work_are_refused(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RequestLog(settings(**{field: value}), FakeStore())
    RequestLog(settings(max_rows=8), FakeStore())  # the smallest ring: a row a segment


def test_the_response_model_is_the_first_an_answer_names_and_bounded() -> None:
    from clawdbot.core import accounting

    c = ctx()
    accounting.answered_by(c, "x" * 257)  # not a model name: an upstream's junk never becomes a label
    accounting.answered_by(c, "")
    accounting.answered_by(c, None)
    assert c.response_model is None
    accounting.answered_by(c, "mock-a-2026-01-01")
    accounting.answered_by(c, "mock-a-later")  # a later event does not rename it
    assert c.response_model == "mock-a-2026-01-01"
    assert build_record(c, "POST", CHAT, 200).response_model == "mock-a-2026-01-01"
