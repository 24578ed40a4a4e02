"""codecs/openai.py (and openai_wire.py): a client's body decodes or is a 400; an upstream's answer,
event or list decodes or is a 502; and every pair of directions round-trips: a request through
canonical and back, an answer, a stream (any cut of its bytes), embeddings."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import example, given
from hypothesis import strategies as st

from clawdbot.codecs import openai as oa
from clawdbot.codecs.sse import EventSplitter, event_data
from clawdbot.core.errors import BadRequest, UpstreamError
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Usage
from tests.property.canonical import chunks, responses, total, usages
from tests.property.strategies import bodies, clean_text, cuts, json_values, name_text, only, spelled
from tests.property.wire import OPENAI_KEYS, embedding_request, openai_answer, openai_chunk, openai_request

DEEP = b'{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"text","x":' + \
    b"[" * 3000 + b"]" * 3000 + b"}}"


def parse(body: bytes) -> ChatRequest | None:
    """parse_chat_request: the canonical request, or None for a 400 that says what is wrong."""
    try:
        return oa.parse_chat_request(body)[1]
    except BadRequest as exc:
        assert exc.status == 400 and exc.message and exc.code, exc
        return None


# ---- inbound ---------------------------------------------------------------------------------------


@given(bodies(openai_request, OPENAI_KEYS))
@example(DEEP)  # deeper than the decoder can recurse: was a RecursionError (a 500)
@example(b'{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":1e400}')
@example(b'{"model":"m","messages":[{"role":"user","content":"\xff"}]}')
@example(b'{"\x80stream":false,"messages":[{"role":"system","content":""}],"model":"0"}')  # bad UTF-8 in an
# unknown key: the typed decoder skips it, the fast path's rewrite then raised UnicodeDecodeError (a 500)
def test_a_chat_body_decodes_or_is_a_400(body: bytes) -> None:
    req = parse(body)
    if req is None:
        return
    assert req.model and req.messages
    # what the fast path does with the client's bytes (JSON out, or a 400), and the request re-encoded
    for force_usage in (False, True):
        sent = only(BadRequest, oa.upstream_body, body, msgspec.structs.replace(req, stream=force_usage), "up", "x")
        assert sent is body or sent is None or isinstance(msgspec.json.decode(sent), dict)
        sent = only(BadRequest, oa.rewrite_request, body, "up", force_usage, "max_completion_tokens", True, 7)
        assert sent is None or msgspec.json.decode(sent)["model"] == "up"
    msgspec.json.decode(oa.encode_chat_request(req, req.limit_field or "max_tokens"))


@given(bodies(embedding_request, ["model", "input", "dimensions", "encoding_format", "user"]))
def test_an_embeddings_body_decodes_or_is_a_400(body: bytes) -> None:
    req = only(BadRequest, oa.parse_embedding_request, body)
    if req is not None:
        assert req.model is not None and req.input and all(isinstance(t, str) for t in req.input)


def normal(req: ChatRequest) -> ChatRequest:
    """What the OpenAI encoder is meant to keep of a request: reasoning sent back is left out (DeepSeek
    refuses it), and a stream always asks for usage (the gateway needs it)."""
    messages = [msgspec.structs.replace(m, reasoning=None) for m in req.messages]
    return msgspec.structs.replace(req, messages=messages, include_usage=req.stream)


@given(openai_request)
def test_a_request_keeps_its_meaning_through_canonical_and_back(wire: dict[str, Any]) -> None:
    first = oa.parse_chat_request(msgspec.json.encode(wire))[1]
    again = oa.parse_chat_request(oa.encode_chat_request(first, first.limit_field or "max_tokens"))[1]
    assert msgspec.to_builtins(again) == msgspec.to_builtins(normal(first))


# ---- an upstream's answers ---------------------------------------------------------------------------


@given(responses, name_text)
def test_an_answer_keeps_its_meaning_through_the_wire(resp: ChatResponse, model: str) -> None:
    body = oa.encode_chat_response(resp, model)
    back = oa.decode_chat_response(body)
    m = resp.message
    expected = ChatResponse(resp.id, model, resp.created, msgspec.structs.replace(
        m, content=m.text() if m.content is not None else None, tool_calls=m.tool_calls or None,
        reasoning=m.reasoning or None), resp.finish_reason, resp.usage)
    assert back == expected
    assert oa.decode_whole(body) == (expected, True)  # nothing in it the canonical answer misses
    assert oa.read_answer(body, "s") == (resp.usage, model)


@given(bodies(openai_answer, ["choices", "message", "usage", "content", "tool_calls", "refusal", "logprobs"]))
@example(b'{"choices":[{"message":{"content":"\xff"}}]}')  # invalid UTF-8 in a string: was a UnicodeDecodeError
def test_an_answer_decodes_or_is_a_502(body: bytes) -> None:
    resp = only(UpstreamError, oa.decode_chat_response, body)
    whole = only(UpstreamError, oa.decode_whole, body)
    assert (resp is None) == (whole is None)
    if whole is not None and whole[1]:
        assert whole[0] == resp
    only(UpstreamError, oa.read_answer, body, "s")
    closing = oa.closing_events(body, "length", Usage(1, 2))  # any last event: the end still goes out
    assert closing.startswith(b"data: {") and closing.endswith(b"\n\n")


@given(bodies(openai_chunk, ["choices", "delta", "usage", "error", "tool_calls", "content", "finish_reason"]))
@example(b'{"model":"\xff"}')
@example(b"[DONE]")
def test_an_event_decodes_or_is_a_502(data: bytes) -> None:
    chunk = only(UpstreamError, oa.decode_stream_data, data)
    probe = only(UpstreamError, oa.probe_stream_data, data, "s")
    only(UpstreamError, oa.probe_stream_model, data, "s")
    if chunk is not None and probe is not None and (chunk.content or chunk.reasoning or chunk.tool_calls):
        assert probe.output()  # the fast path counts every event that carries output


@given(chunks, st.booleans(), st.data())
def test_a_stream_keeps_its_meaning_through_events(stream: list[ChatChunk], include_usage: bool,
                                                   data: st.DataObject) -> None:
    enc = oa.ChunkEncoder("chatcmpl-1", "m", 7, include_usage)
    wire = b"".join(enc.encode(c) for c in stream) + enc.done()
    splitter = EventSplitter()
    events = [e for piece in data.draw(cuts(wire)) for e in splitter.feed(piece)]
    assert splitter.tail() == b""
    decoded = [oa.decode_stream_data(event_data(e) or b"") for e in events]
    assert decoded[-1] is None and None not in decoded[:-1]  # [DONE], once, last
    sent = total(stream)
    if not include_usage:
        sent["usage"] = None
    assert total(decoded) == sent


@given(st.builds(EmbeddingRequest, name_text, st.lists(clean_text, min_size=1, max_size=4),
                 st.none() | st.integers(1, 4096)))
def test_an_embeddings_request_round_trips(req: EmbeddingRequest) -> None:
    assert oa.parse_embedding_request(oa.encode_embedding_request(req)) == req


@given(st.builds(EmbeddingResponse, clean_text, st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False),
                                                                  max_size=5), max_size=4), usages()))
def test_an_embeddings_answer_round_trips(resp: EmbeddingResponse) -> None:
    back = oa.decode_embedding_response(oa.encode_embedding_response(resp, "m", "float"))
    assert back == EmbeddingResponse("m", resp.vectors, Usage(resp.usage.prompt_tokens))


@given(st.one_of(spelled(json_values), st.binary(max_size=64),
                 spelled(st.fixed_dictionaries({"data": st.lists(st.fixed_dictionaries({"id": clean_text}))}))))
def test_an_upstreams_lists_decode_or_are_a_502(body: bytes) -> None:
    only(UpstreamError, oa.decode_model_list, body)
    only(UpstreamError, oa.decode_embedding_response, body)
