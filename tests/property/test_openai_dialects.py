"""OpenAI's other dialects: legacy completions (codecs/openai_completions.py) and Responses
(codecs/openai_responses.py, openai_responses_out.py). A body decodes or is a 400; what the
encoders write is JSON that says what the canonical answer or stream said."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import example, given
from hypothesis import strategies as st

from clawdbot.codecs import openai_completions as oc
from clawdbot.codecs import openai_responses as ro
from clawdbot.codecs import openai_responses_out as rout
from clawdbot.codecs.sse import EventSplitter, event_data
from clawdbot.core.errors import BadRequest, UpstreamError
from clawdbot.core.types import ChatChunk, ChatResponse, Usage
from tests.property.canonical import answer_streams, responses, total, usages
from tests.property.strategies import bodies, only
from tests.property.wire import COMPLETION_KEYS, RESPONSES_KEYS, completion_request, responses_request

decode = msgspec.json.decode


def events(wire: bytes) -> list[Any]:
    splitter = EventSplitter()
    out = [None if data == b"[DONE]" else decode(data or b"null")
           for data in map(event_data, splitter.feed(wire))]
    assert splitter.tail() == b""
    return out


@given(bodies(completion_request, COMPLETION_KEYS))
@example(b'{"model":"m","prompt":[' + b"[" * 3000 + b"]" * 3000 + b"]}")  # was a RecursionError
def test_a_completions_body_decodes_or_is_a_400(body: bytes) -> None:
    req = only(BadRequest, oc.parse, body)
    if req is not None:
        assert req.model and len(req.messages) == 1 and req.max_tokens is not None and req.max_tokens >= 1


@given(responses, answer_streams(), usages(), st.booleans())
def test_completions_answers_and_streams_say_the_text(resp: ChatResponse, stream: list[ChatChunk], count: Usage,
                                                      include_usage: bool) -> None:
    whole = decode(oc.encode_response(resp, "m", 7))
    assert whole["choices"][0]["text"] == resp.message.text()
    enc = oc.StreamEncoder("m", 7, include_usage)
    wire = b"".join(enc.encode(c) for c in stream) + enc.closing(False, count, True)
    said = events(wire)
    assert said[-1] is None  # [DONE]
    text = "".join(str(e["choices"][0]["text"]) for e in said[:-1] if e["choices"])
    assert text == total(stream)["content"]
    assert any("usage" in e for e in said[:-1]) == include_usage


@given(bodies(responses_request, RESPONSES_KEYS))
@example(b'{"model":"m","input":[{"role":[]}]}')  # an unhashable role: was a TypeError
@example(b'{"model":"m","input":[{"type":"message","role":{"a":1},"content":"x"}]}')
@example(b'{"model":"m","input":[{"type":"reasoning","summary":[]}]}')  # was an empty prompt (issue 14)
def test_a_responses_body_decodes_or_is_a_400(body: bytes) -> None:
    parsed = only(BadRequest, ro.parse, body)
    if parsed is None:
        return
    assert parsed.chat.model and len(parsed.items) >= 1
    assert parsed.turn, "an input that says nothing to the model is a 400, not an empty prompt"
    msgspec.json.encode(parsed.items)  # stored as they are for /input_items
    shell = rout.Shell(parsed, "m", True)
    msgspec.json.encode(shell.object("in_progress", []))


@given(responses_request, responses, answer_streams(), usages())
def test_responses_answers_and_events_say_what_the_stream_said(wire: dict[str, object], resp: ChatResponse,
                                                               stream: list[ChatChunk], count: Usage) -> None:
    parsed = ro.parse(msgspec.json.encode(wire))
    shell = rout.Shell(parsed, "m", False)
    whole = rout.encode_response(shell, resp)
    texts = [p["text"] for item in whole["output"] if item["type"] == "message" for p in item["content"]]
    assert "".join(texts) == resp.message.text()
    enc = rout.EventEncoder(shell)
    said = events(enc.opening(lambda: 0) + b"".join(enc.encode(c) for c in stream) + enc.closing(False, count, True))
    assert [e["sequence_number"] for e in said] == list(range(len(said)))
    assert said[-1]["type"] in ("response.completed", "response.incomplete")
    sent = total(stream)
    deltas = "".join(str(e["delta"]) for e in said if e["type"] == "response.output_text.delta")
    assert deltas == sent["content"]
    message = enc.message()
    assert (message.content or "", message.reasoning or "") == (sent["content"], sent["reasoning"])
    assert [(c.id, c.name, c.arguments) for c in message.tool_calls or ()] == [
        tuple(sent["calls"][i]) for i in sorted(sent["calls"])]


@given(st.sampled_from([UpstreamError("boom"), BadRequest("no")]))
def test_a_failure_after_the_start_is_two_events(exc: UpstreamError | BadRequest) -> None:
    parsed = ro.parse(b'{"model":"m","input":"hi"}')
    said = events(rout.EventEncoder(rout.Shell(parsed, "m", False)).failure(exc))
    assert [e["type"] for e in said] == ["error", "response.failed"]
