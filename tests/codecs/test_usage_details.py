"""Cached prompt tokens and reasoning tokens carried through the canonical Usage: read from an
OpenAI-compatible upstream (`*_tokens_details`) and an Anthropic one (`cache_read_input_tokens`),
written in each client dialect's own fields."""

from __future__ import annotations

import json

from clawdbot.codecs import anthropic as an
from clawdbot.codecs import anthropic_upstream as au
from clawdbot.codecs import openai as oa
from clawdbot.codecs import openai_responses as ro
from clawdbot.codecs import openai_responses_out as rout
from clawdbot.codecs.anthropic_stream import StreamEncoder
from clawdbot.core.types import ChatChunk, ChatResponse, Message, Usage

OPENAI_ANSWER = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
              "prompt_tokens_details": {"cached_tokens": 100}, "completion_tokens_details": {"reasoning_tokens": 12}},
}).encode()
ANTHROPIC_ANSWER = json.dumps({
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
    "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 20, "output_tokens": 30, "cache_read_input_tokens": 100,
              "cache_creation_input_tokens": 0},
}).encode()


def test_read_from_both_upstream_dialects() -> None:
    assert oa.decode_chat_response(OPENAI_ANSWER).usage == Usage(120, 30, 100, 12)
    assert au.decode_response(ANTHROPIC_ANSWER).usage == Usage(120, 30, 100, 0)
    chunk = oa.decode_stream_data(json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                              "choices": [], "usage": json.loads(OPENAI_ANSWER)["usage"]}).encode())
    assert chunk is not None and chunk.usage == Usage(120, 30, 100, 12)


def test_written_in_each_client_dialect() -> None:
    u = Usage(120, 30, 100, 12)
    answer = ChatResponse("x", "m", 1, Message("assistant", "hi"), "stop", u)
    usage = json.loads(oa.encode_chat_response(answer, "m"))["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 100}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 12}
    # Anthropic: input_tokens leaves the cached part out
    assert json.loads(an.encode_message_response(answer, "m"))["usage"] == {
        "input_tokens": 20, "output_tokens": 30, "cache_read_input_tokens": 100}
    enc = StreamEncoder("m")
    enc.start(1)
    enc.encode(ChatChunk(content="hi"))
    enc.encode(ChatChunk(finish_reason="stop", usage=u))
    delta = [json.loads(line[6:]) for line in enc.done().decode().splitlines() if line.startswith("data: ")][-2]
    assert delta["usage"]["cache_read_input_tokens"] == 100 and delta["usage"]["input_tokens"] == 20
    shell = rout.Shell(ro.parse(b'{"model": "m", "input": "hi"}'), "m", False)
    got = rout.encode_response(shell, answer)["usage"]
    assert got["input_tokens_details"] == {"cached_tokens": 100}
    assert got["output_tokens_details"] == {"reasoning_tokens": 12}
    # no details: nothing extra in OpenAI's shape
    plain = json.loads(oa.encode_chat_response(ChatResponse("x", "m", 1, Message("assistant", "hi"), "stop",
                                                            Usage(5, 6)), "m"))["usage"]
    assert plain == {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}
