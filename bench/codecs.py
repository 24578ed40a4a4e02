"""Micro-benchmarks of the per-request and per-chunk work that is pure CPU: decoding the client's
request, encoding and decoding stream chunks in both dialects. Prints microseconds per call.

    uv run python bench/codecs.py [--number N]
"""

from __future__ import annotations

import argparse
import json
import timeit
from collections.abc import Callable

from clawdbot.codecs import anthropic as an
from clawdbot.codecs import anthropic_raw as ar
from clawdbot.codecs import ollama as ol
from clawdbot.codecs import openai as oa
from clawdbot.codecs import openai_responses as ro
from clawdbot.codecs import openai_responses_out as rout
from clawdbot.codecs.anthropic_stream import StreamEncoder
from clawdbot.core.types import ChatChunk, ChatResponse, Message, Usage

REQUEST = json.dumps({
    "model": "mock-model", "max_tokens": 32, "stream": True, "stream_options": {"include_usage": True},
    "messages": [{"role": "system", "content": "You are terse."},
                 {"role": "user", "content": "Say hello. " * 20}],
}).encode()
ANTHROPIC_REQUEST = json.dumps({
    "model": "mock-model", "max_tokens": 32, "stream": True, "system": "You are terse.",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello. " * 20}]}],
}).encode()
RESPONSES_REQUEST = json.dumps({
    "model": "mock-model", "max_output_tokens": 32, "stream": True, "instructions": "You are terse.",
    "input": [{"role": "user", "content": [{"type": "input_text", "text": "Say hello. " * 20}]}],
}).encode()
OPENAI_CHUNK = (b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",'
                b'"choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}')
ANTHROPIC_DELTA = b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"tok "}}'
OLLAMA_LINE = (b'{"model":"llama3.2","created_at":"2025-06-30T11:02:17.215512804Z",'
               b'"message":{"role":"assistant","content":"tok "},"done":false}')


def cases() -> dict[str, Callable[[], object]]:
    _, req = oa.parse_chat_request(REQUEST)
    enc = oa.ChunkEncoder("chatcmpl-1", "m", 1, True)
    chunk = ChatChunk(content="tok ")
    last = ChatChunk(finish_reason="stop", usage=Usage(10, 16))
    stream = StreamEncoder("m")
    stream.start(10)
    stream.encode(chunk)  # the text block is open: what every later delta costs
    reader = ar.EventReader()
    shell = rout.Shell(ro.parse(RESPONSES_REQUEST), "m", False)
    events = rout.EventEncoder(shell)
    events.opening(lambda: 10)
    events.encode(chunk)  # the message item is open: what every later delta costs
    answer = ChatResponse("x", "m", 1, Message("assistant", "tok " * 16), "stop", Usage(10, 16))
    return {
        "anthropic: parse + validate request": lambda: an.parse_messages_request(ANTHROPIC_REQUEST),
        "anthropic: encode canonical chunk (text_delta)": lambda: stream.encode(chunk),
        "anthropic: encode whole answer": lambda: an.encode_message_response(answer, "m"),
        "anthropic bytes through: read head + rewrite model": lambda: ar.rewrite_request(
            ANTHROPIC_REQUEST, "claude-x") if ar.read_head(ANTHROPIC_REQUEST) else None,
        "anthropic bytes through: read a passed event": lambda: reader.read(ANTHROPIC_DELTA, "s"),
        "responses: parse + validate request": lambda: ro.parse(RESPONSES_REQUEST),
        "responses: encode canonical chunk (output_text.delta)": lambda: events.encode(chunk),
        "responses: encode whole answer": lambda: rout.encode_response(shell, answer),
        "openai: parse + validate request": lambda: oa.parse_chat_request(REQUEST),
        "openai: rewrite request (alias, include_usage)": lambda: oa.rewrite_request(REQUEST, "x", True),
        "openai: probe a passed-through chunk (+ output?)": lambda: oa.probe_stream_data(OPENAI_CHUNK, "s").output(),
        "openai: decode chunk -> canonical": lambda: oa.decode_stream_data(OPENAI_CHUNK),
        "openai: encode canonical chunk": lambda: enc.encode(chunk),
        "openai: encode final chunk + usage": lambda: enc.encode(last),
        "ollama: encode request": lambda: ol.encode_chat_request(req, "llama3.2", 4096),
        "ollama: decode NDJSON line": lambda: ol.decode_stream_line(OLLAMA_LINE),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args()
    print(f"| operation | us/call (best of 5 x {args.number}) |\n|---|---:|")
    for name, fn in cases().items():
        best = min(timeit.repeat(fn, number=args.number, repeat=5)) / args.number * 1e6
        print(f"| {name} | {best:.2f} |")


if __name__ == "__main__":
    main()
