"""codecs/ollama*.py: an Ollama client's body (chat, generate, embed, embeddings, show) decodes or is
a 400; an Ollama upstream's reply, stream line, embeddings and tags decode or are a 502; an Ollama
client's chat request goes through canonical and back to Ollama meaning the same; whole answers,
NDJSON streams and embeddings round-trip."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
from hypothesis import example, given
from hypothesis import strategies as st

from clawdbot.codecs import ollama as ol
from clawdbot.codecs import ollama_inbound as oi
from clawdbot.codecs import openai as oa
from clawdbot.core.errors import BadRequest, UpstreamError
from clawdbot.core.types import ChatChunk, ChatResponse, EmbeddingRequest, EmbeddingResponse, Message, Usage
from tests.property.canonical import answer_streams, responses, total
from tests.property.strategies import bodies, clean_text, name_text, only
from tests.property.wire import (
    OLLAMA_KEYS,
    ollama_chat,
    ollama_embed,
    ollama_embed_reply,
    ollama_embeddings,
    ollama_generate,
    ollama_reply,
)

decode = msgspec.json.decode
DEFAULT_PARAMETERS = {"type": "object", "properties": {}}


@given(bodies(ollama_chat, OLLAMA_KEYS))
@example(b'{"model":"m","options":{"a":' + b"[" * 3000 + b"]" * 3000 + b"}}")  # was a RecursionError
def test_a_chat_body_decodes_or_is_a_400(body: bytes) -> None:
    req = only(BadRequest, oi.parse_chat, body)
    if req is not None:
        assert req.model
        out = only(BadRequest, ol.encode_chat_request, req, req.model, 4096)  # e.g. an image link: named
        assert out is None or decode(out)["model"] == req.model
        decode(oa.encode_chat_request(req))


@given(st.one_of(bodies(ollama_generate, OLLAMA_KEYS), bodies(ollama_embed, OLLAMA_KEYS),
                 bodies(ollama_embeddings, OLLAMA_KEYS)))
def test_the_other_bodies_decode_or_are_a_400(body: bytes) -> None:
    generated = only(BadRequest, oi.parse_generate, body)
    assert generated is None or generated[0].messages[-1].role == "user"
    for parse in (oi.parse_embed, oi.parse_embeddings, oi.parse_model):
        only(BadRequest, parse, body)


def meaning(wire: dict[str, Any]) -> dict[str, Any]:
    """An Ollama chat request as Ollama reads it: its defaults written out, what says nothing left
    out."""
    out = copy.deepcopy(wire)
    out.setdefault("stream", True)
    options = out.get("options", {})
    if options.get("num_predict", 1) <= 0:  # Ollama's "no limit" (-1) and "fill the context" (-2)
        del options["num_predict"]
    if options.get("stop") == []:
        del options["stop"]
    for key in ("options", "tools"):
        if not out.get(key, True):
            del out[key]
    for m in out["messages"]:
        m.setdefault("content", "")
        if not m.get("thinking", "x"):
            del m["thinking"]
    for t in out.get("tools", ()):
        t["function"].setdefault("parameters", DEFAULT_PARAMETERS)
    return out


@given(ollama_chat)
@example({"model": "m", "messages": [{"role": "tool", "content": "r", "tool_name": "f"}]})  # no call named f:
# the name was lost (issue 14)
def test_a_chat_request_means_the_same_after_canonical(wire: dict[str, Any]) -> None:
    req = oi.parse_chat(msgspec.json.encode(wire))
    assert meaning(decode(ol.encode_chat_request(req, req.model, None))) == meaning(wire)


@given(responses)
@example(ChatResponse("x", "m", 10**15, Message("assistant", "hi")))  # past year 9999: was an OverflowError
def test_an_answer_keeps_its_meaning(resp: ChatResponse) -> None:
    back = ol.decode_chat_response(ol.encode_chat_response(resp))
    m = resp.message
    calls = [(c.name, c.arguments) for c in m.tool_calls or ()]
    assert back.model == resp.model
    assert back.created == min(resp.created, 253_402_300_799)
    assert (back.message.content or "") == m.text() and (back.message.reasoning or None) == (m.reasoning or None)
    assert [(c.name, c.arguments) for c in back.message.tool_calls or ()] == calls
    finish = "tool_calls" if calls else "length" if resp.finish_reason == "length" else "stop"
    assert back.finish_reason == finish
    u = resp.usage or Usage()
    assert back.usage == Usage(u.prompt_tokens, u.completion_tokens)


@given(answer_streams())
def test_a_stream_keeps_its_meaning(stream: list[ChatChunk]) -> None:
    enc = oi.NDJSONEncoder("m", generate=False)
    body = b"".join(enc.encode(c) for c in stream) + enc.closing(False, Usage(3, 4), True)
    lines = body.split(b"\n")
    assert lines[-1] == b"" and all(lines[:-1])
    decoded = [ol.decode_stream_line(line) for line in lines]
    assert decoded[-1] is None and decoded[-2] is not None and decoded[-2].finish_reason is not None
    sent, got = total(stream), total(decoded)
    for calls in (sent["calls"], got["calls"]):  # Ollama's calls carry no id: one is made up
        for call in calls.values():
            call[0] = None
    # the upstream's usage; the count closing() is given when there is none, or the answer hit its limit
    u = Usage(3, 4) if sent["usage"] is None or sent["finish"] == "length" else sent["usage"]
    sent["usage"] = Usage(u.prompt_tokens, u.completion_tokens)
    sent["finish"] = "length" if sent["finish"] == "length" else "tool_calls" if sent["calls"] else "stop"
    if got["calls"] and got["finish"] == "stop":  # the last line carries no calls: the reader says so
        got["finish"] = "tool_calls"  # (providers/ollama.py, _StreamState)
    assert got == sent


@given(bodies(ollama_reply, OLLAMA_KEYS))
@example(b'{"model":"\xff","done":true}')  # was a UnicodeDecodeError
@example(b'{"created_at":"0001-01-01","message":{"content":"x"},"done":true}')
def test_an_upstream_reply_or_line_decodes_or_is_a_502(body: bytes) -> None:
    only(UpstreamError, ol.decode_chat_response, body)
    only(UpstreamError, ol.decode_stream_line, body)


@given(st.one_of(bodies(ollama_embed_reply), bodies(st.fixed_dictionaries(
    {"models": st.lists(st.fixed_dictionaries({"name": name_text}))}))))
def test_upstream_embeddings_and_tags_decode_or_are_a_502(body: bytes) -> None:
    only(UpstreamError, ol.decode_embed_response, body)
    only(UpstreamError, ol.decode_tags, body)


@given(st.builds(EmbeddingRequest, name_text, st.lists(clean_text, min_size=1, max_size=4),
                 st.none() | st.integers(1, 4096)))
def test_an_embeddings_request_round_trips(req: EmbeddingRequest) -> None:
    assert oi.parse_embed(ol.encode_embed_request(req, req.model)) == req


@given(st.builds(EmbeddingResponse, clean_text, st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False),
                                                                  max_size=5), max_size=4),
                 st.builds(Usage, st.integers(0, 2**40))))
def test_an_embeddings_answer_round_trips(resp: EmbeddingResponse) -> None:
    assert ol.decode_embed_response(ol.encode_embed_response(resp)) == resp
