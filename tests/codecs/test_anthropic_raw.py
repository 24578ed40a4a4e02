"""codecs/anthropic_raw.py: the Anthropic -> Anthropic fast path's reading and edits."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from clawdbot.codecs import anthropic_raw as ar
from clawdbot.codecs.sse import EventSplitter, event_data
from clawdbot.core.errors import UpstreamError
from clawdbot.core.types import Usage

FIXTURE = Path(__file__).parent.parent / "fixtures" / "anthropic" / "stream_tool_use.sse"
BODY = (b'{"model": "claude",  "max_tokens": 64, "system": [{"type":"text","text":"caf\\u00e9",'
        b'"cache_control":{"type":"ephemeral"}}], "messages": [{"role":"user","content":[{"type":"document",'
        b'"source":{"type":"text","media_type":"text/plain","data":"x"}}]}], "temperature": 0.50}')


def raw_fields(body: bytes) -> dict[str, bytes]:
    return {k: bytes(v) for k, v in msgspec.json.decode(body, type=dict[str, msgspec.Raw]).items()}


def test_the_rewrite_keeps_every_other_value_byte_for_byte() -> None:
    assert ar.rewrite_request(BODY, None) is BODY  # nothing to change: the very bytes
    out = raw_fields(ar.rewrite_request(BODY, "claude-up", 16))
    before = raw_fields(BODY)
    assert out.pop("model") == b'"claude-up"' and out.pop("max_tokens") == b"16"
    assert out == {k: v for k, v in before.items() if k not in ("model", "max_tokens")}
    assert out["system"].count(b"\\u00e9") == 1 and out["temperature"] == b"0.50"  # not re-encoded


def test_the_head_of_a_request_the_canonical_types_cannot_hold() -> None:
    head = ar.read_head(BODY)
    assert head is not None and len(head.messages) == 1
    req = head.request()
    assert (req.model, req.max_tokens, req.stream, req.messages) == ("claude", 64, False, [])
    assert ar.read_head(b'{"model": "m", "max_tokens": 0, "messages": [{}]}') is None
    assert ar.read_head(b'{"model": "m", "max_tokens": 5, "messages": []}') is None
    assert ar.read_head(b"not json") is None


def test_a_whole_answer_s_usage_counts_the_prompt_cache() -> None:
    body = (b'{"type":"message","model":"claude-x-20260101","usage":{"input_tokens":10,"output_tokens":3,'
            b'"cache_read_input_tokens":100,"cache_creation_input_tokens":20}}')
    assert ar.read_answer(body, "s") == (Usage(130, 3, cached_tokens=100), "claude-x-20260101")
    with pytest.raises(UpstreamError, match="not a message"):
        ar.read_answer(b'{"type":"error","error":{}}', "s")
    with pytest.raises(UpstreamError):
        ar.read_answer(b"<html>", "s")


def test_the_reader_over_a_recorded_stream() -> None:
    reader, kinds = ar.EventReader(), []
    for ev in EventSplitter().feed(FIXTURE.read_bytes()):
        data = event_data(ev)
        assert data is not None
        kinds.append(reader.read(data, "s"))
    # two text deltas and two non-empty tool-input deltas are output; message_stop ends it
    assert kinds.count(ar.OUTPUT) == 4 and kinds[-1] == ar.STOP
    assert (reader.prompt, reader.output, reader.open) == (472, 89, None)


def test_a_cut_closes_the_open_block_and_stops_at_max_tokens() -> None:
    reader = ar.EventReader()
    reader.read(b'{"type":"content_block_start","index":2,"content_block":{"type":"text","text":""}}', "s")
    events = [msgspec.json.decode(event_data(e) or b"") for e in EventSplitter().feed(reader.cut(7))]
    assert [e["type"] for e in events] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[0]["index"] == 2 and events[1]["delta"]["stop_reason"] == "max_tokens"
    assert events[1]["usage"] == {"output_tokens": 7}


def test_error_events_and_malformed_ones() -> None:
    reader = ar.EventReader()
    err = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    assert reader.read(err, "s") == ar.ERROR and "overloaded_error" in reader.error
    with pytest.raises(UpstreamError, match="malformed"):
        reader.read(b"{nope", "s")
