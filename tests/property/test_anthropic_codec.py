"""codecs/anthropic*.py: a client's /v1/messages body decodes or is a 400 (and the bytes-through path
reads or rewrites it, or says 400); an upstream's message and events decode or are a 502; requests
reach a fixed point through canonical and back (from an Anthropic client's body and from an OpenAI
client's request); a whole answer and a stream (cut anywhere) keep their meaning."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import example, given
from hypothesis import strategies as st

from clawdbot.codecs import anthropic as an
from clawdbot.codecs import anthropic_raw as ar
from clawdbot.codecs import anthropic_upstream as au
from clawdbot.codecs import openai as oa
from clawdbot.codecs.anthropic_stream import StreamEncoder
from clawdbot.codecs.sse import EventSplitter, event_data
from clawdbot.core.errors import BadRequest, UpstreamError
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, Message, Usage
from tests.property.canonical import answer_streams, responses, total
from tests.property.strategies import bodies, cuts, name_text, only, spelled
from tests.property.wire import ANTHROPIC_KEYS, anthropic_answer, anthropic_event, anthropic_request, openai_request

decode = msgspec.json.decode


class Edited(msgspec.Struct):
    model: str
    max_tokens: int


def parse(body: bytes) -> ChatRequest | None:
    try:
        return an.parse_messages_request(body)
    except BadRequest as exc:
        assert exc.status == 400 and exc.message, exc
        return None


@given(bodies(anthropic_request, ANTHROPIC_KEYS))
@example(b'{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"metadata":{"a":' + b"[" * 3000
         + b"]" * 3000 + b"}}")  # was a RecursionError
@example(b'{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"\xff":1}')
def test_a_messages_body_decodes_or_is_a_400(body: bytes) -> None:
    req = parse(body)
    only(BadRequest, an.parse_count_tokens_request, body)
    head = ar.read_head(body)  # the bytes-through path: what it needs, or None (then the 400 stands)
    if head is not None:
        assert head.model and head.max_tokens >= 1 and head.messages
        out = only(BadRequest, ar.rewrite_request, body, "up", 5)  # was a UnicodeDecodeError on a bad key
        if out is not None:  # the other values are the client's own bytes, whatever they hold
            assert decode(out, type=Edited) == Edited("up", 5)
    if req is not None:
        assert req.model and req.messages and req.max_tokens is not None and req.max_tokens >= 1
        for encoded in (only(BadRequest, au.encode_request, req, "up"), oa.encode_chat_request(req)):
            assert encoded is None or isinstance(decode(encoded), dict)


def meaning(body: bytes) -> dict[str, Any]:
    """An encoded request as the API reads it: an empty system prompt or stop list is none, an assistant turn's
    text is one text (two assistant messages in a row are one turn, whose text blocks a client's
    body joins), before its tool calls."""
    out: dict[str, Any] = decode(body)
    for key in ("system", "stop_sequences"):  # "" and [] say nothing
        if key in out and not out[key]:
            del out[key]
    for turn in out["messages"]:
        if turn["role"] == "assistant":
            text = "".join(b["text"] for b in turn["content"] if b["type"] == "text")
            turn["content"] = ([{"type": "text", "text": text}] if text else []) + [
                b for b in turn["content"] if b["type"] != "text"]
    return out


def fixed_point(req: ChatRequest) -> None:
    """Encoded for an Anthropic service, read back as an Anthropic client's body, and encoded again:
    the same request. The first encoding may refuse (a 400 naming what Anthropic cannot take); what
    it sends must be a body this gateway's own Anthropic API accepts."""
    first = only(BadRequest, au.encode_request, req, req.model)
    if first is None:
        return
    back = parse(first)
    if not decode(first)["messages"]:  # every message was empty: nothing to send, and said so
        assert back is None
        return
    assert back is not None, first
    assert meaning(au.encode_request(back, back.model)) == meaning(first)
    results = [b for t in decode(first)["messages"] for b in t["content"] if b["type"] == "tool_result"]
    assert all(b["tool_use_id"] for b in results), first  # the API requires the id of the call answered


@given(anthropic_request)
@example({"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "x"}],
          "tools": [{"name": "f"}], "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}})  # was lost
def test_an_anthropic_request_reaches_a_fixed_point(wire: dict[str, Any]) -> None:
    req = parse(msgspec.json.encode(wire))
    if req is not None:  # e.g. `thinking` with its budget: a 400 when max_tokens is not above it
        fixed_point(req)


@given(anthropic_request)
@example({"model": "m", "max_tokens": 9000, "messages": [{"role": "user", "content": "x"}],
          "thinking": {"type": "enabled", "budget_tokens": 5000}})  # was sent back as 4096 (its effort's budget)
def test_a_thinking_budget_goes_back_as_sent(wire: dict[str, Any]) -> None:
    req = parse(msgspec.json.encode(wire))
    out = only(BadRequest, au.encode_request, req, "up") if req is not None else None
    thinking = wire.get("thinking") or {}
    if out is None or thinking.get("type") != "enabled":  # adaptive is sent as its effort's budget
        return
    assert decode(out)["thinking"] == {"type": "enabled", "budget_tokens": thinking["budget_tokens"]}


@given(openai_request)
@example({"model": "m", "messages": [  # a tool result after the user's text: the API wants results first
    {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function",
                                                           "function": {"name": "f", "arguments": "{}"}}]},
    {"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "c", "content": "r"}]})
@example({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]})  # an empty
# text block, which the API refuses, was sent
@example({"model": "m", "messages": [  # legacy function calling: the result had no tool_use_id (issue 14)
    {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
    {"role": "function", "name": "f", "content": "r"}]})
def test_an_openai_clients_request_reaches_a_fixed_point(wire: dict[str, Any]) -> None:
    fixed_point(oa.parse_chat_request(msgspec.json.encode(wire))[1])


@given(responses, name_text)
def test_an_answer_keeps_its_meaning(resp: ChatResponse, model: str) -> None:
    back = au.decode_response(an.encode_message_response(resp, model))
    m, u = resp.message, resp.usage or Usage()
    assert back.model == model
    assert back.message == Message("assistant", m.text() or None, tool_calls=m.tool_calls or None,
                                   reasoning=m.reasoning or None)
    assert back.finish_reason == (resp.finish_reason or "stop")
    assert back.usage == Usage(u.prompt_tokens, u.completion_tokens, u.cached_tokens)  # no reasoning count
    assert ar.read_answer(an.encode_message_response(resp, model), "s") == (back.usage, model)


@given(answer_streams(), st.data())
@example([ChatChunk(content="x"), ChatChunk(finish_reason="stop", usage=Usage(5, 1, 5))], None)  # all cached
def test_a_stream_keeps_its_meaning(stream: list[ChatChunk], data: st.DataObject | None) -> None:
    enc = StreamEncoder("m")
    wire = enc.start(0) + b"".join(enc.encode(c) for c in stream) + enc.done()
    pieces = data.draw(cuts(wire)) if data is not None else [wire]
    splitter, dec, reader = EventSplitter(), au.StreamDecoder(), ar.EventReader()
    decoded: list[ChatChunk | None] = []
    kinds = []
    for piece in pieces:
        for event in splitter.feed(piece):
            payload = event_data(event)
            assert payload is not None
            decoded.append(dec.decode(payload))
            kinds.append(reader.read(payload, "s"))
    assert splitter.tail() == b"" and dec.done and decoded[-1] is None and kinds[-1] == ar.STOP
    sent = total(stream)
    u = sent["usage"] or Usage()
    sent["usage"] = Usage(u.prompt_tokens, u.completion_tokens, u.cached_tokens)  # Anthropic has no reasoning count
    sent["finish"] = sent["finish"] or "stop"
    got = total(decoded)
    # the decoder numbers tool calls 0, 1, ... as their blocks come: so does answer_streams()
    assert got == sent
    assert (reader.prompt, reader.output) == (u.prompt_tokens, u.completion_tokens)
    outputs = sum(1 for c in stream if c.content or c.reasoning or any(d.arguments for d in c.tool_calls or ()))
    assert kinds.count(ar.OUTPUT) == outputs


@given(bodies(anthropic_answer, ANTHROPIC_KEYS))
@example(b'{"content":[{"type":"tool_use","input":' + b"[" * 3000 + b"]" * 3000 + b"}]}")  # was a RecursionError
@example(b'{"type":"message","model":"\xff"}')  # was a UnicodeDecodeError
@example(b'{"content":[],"data":1}')  # a model list's `data` not an array: was a TypeError
def test_an_upstream_message_decodes_or_is_a_502(body: bytes) -> None:
    only(UpstreamError, au.decode_response, body)
    only(UpstreamError, ar.read_answer, body, "s")
    only(UpstreamError, au.decode_models, body)


@given(st.lists(bodies(anthropic_event, ANTHROPIC_KEYS), max_size=6))
@example([b'{"type":"content_block_delta","delta":{"type":"text_delta","text":"\xff"}}'])
def test_upstream_events_decode_or_are_a_502(events: list[bytes]) -> None:
    dec, reader = au.StreamDecoder(), ar.EventReader()
    for data in events:
        only(UpstreamError, dec.decode, data)
        only(UpstreamError, reader.read, data, "s")
    end = reader.cut(7)  # a stream cut at the cap ends as Anthropic's do, whatever came before
    assert [decode(event_data(e) or b"")["type"] for e in EventSplitter().feed(end)][-2:] == [
        "message_delta", "message_stop"]


@given(spelled(st.fixed_dictionaries({"data": st.lists(st.fixed_dictionaries({"id": name_text}))})))
def test_a_model_list_decodes(body: bytes) -> None:
    only(UpstreamError, au.decode_models, body)
