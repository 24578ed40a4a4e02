"""OpenAI's legacy Completions dialect (POST /v1/completions: a prompt in, text out) <-> canonical.
The prompt becomes the user's turn of a chat (what a chat-only upstream can answer); what only a
raw text model can do (echo, suffix, logprobs, best_of, several prompts or token-id prompts) is
refused with a 400 that names it. `max_tokens` defaults to 16, as in OpenAI's API."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import msgspec

from clawdbot.codecs.decoding import DECODE_ERRORS
from clawdbot.codecs.openai import SSE_TYPE, decode_error, encode_stream_error
from clawdbot.core.errors import BadRequest, GatewayError
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, Message, Usage

DEFAULT_MAX_TOKENS = 16
DONE = b"data: [DONE]\n\n"
_encode = msgspec.json.Encoder().encode


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


class CompletionBody(msgspec.Struct):
    model: str
    prompt: str | list[Any] = ""
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None
    echo: bool | None = None
    suffix: str | None = None
    logprobs: int | None = None
    best_of: int | None = None
    logit_bias: dict[str, float] | None = None


def parse(body: bytes) -> ChatRequest:
    try:
        b = msgspec.json.decode(body, type=CompletionBody)
    except DECODE_ERRORS as exc:
        raise decode_error(exc) from None
    if not b.model:
        raise BadRequest("'model' must not be empty.", param="model", code="invalid_value")
    prompt = b.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise BadRequest("'prompt' must be one string here (several prompts or token ids need a raw text "
                             "model).", param="prompt", code="invalid_value")
        prompt = prompt[0]
    for name, bad in (("n", b.n not in (None, 1)), ("best_of", b.best_of not in (None, 1)), ("echo", bool(b.echo)),
                      ("suffix", bool(b.suffix)), ("logprobs", b.logprobs is not None)):
        if bad:
            raise BadRequest(f"'{name}' is not supported through this gateway's completions (the prompt is "
                             f"answered as a chat turn).", param=name, code="unsupported_parameter")
    limit = b.max_tokens if b.max_tokens is not None else DEFAULT_MAX_TOKENS
    if limit < 1:
        raise BadRequest("Invalid 'max_tokens': must be at least 1.", param="max_tokens", code="invalid_value")
    stop = [b.stop] if isinstance(b.stop, str) else b.stop
    return ChatRequest(
        model=b.model, messages=[Message("user", prompt)], stream=bool(b.stream), temperature=b.temperature,
        top_p=b.top_p, max_tokens=limit, stop=stop or None, seed=b.seed, presence_penalty=b.presence_penalty,
        frequency_penalty=b.frequency_penalty, user=b.user,
        include_usage=bool(b.stream_options and b.stream_options.include_usage),
        extra={"logit_bias": b.logit_bias} if b.logit_bias else None,
    )


def completion_id() -> str:
    return "cmpl-" + secrets.token_hex(12)


def _usage(u: Usage) -> dict[str, int]:
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens}


def encode_response(resp: ChatResponse, model: str, created: int) -> bytes:
    out: dict[str, Any] = {"id": completion_id(), "object": "text_completion", "created": created, "model": model,
                           "choices": [{"text": resp.message.text(), "index": 0, "logprobs": None,
                                        "finish_reason": resp.finish_reason or "stop"}]}
    if resp.usage is not None:
        out["usage"] = _usage(resp.usage)
    return _encode(out)


class StreamEncoder:
    """Canonical chunks as the Completions stream's `data:` events (text only; a tool call or
    reasoning has no place in it); api/encoded.py's Encoder."""

    content_type = SSE_TYPE

    def __init__(self, model: str, created: int, include_usage: bool) -> None:
        self.head = {"id": completion_id(), "object": "text_completion", "created": created, "model": model}
        self.include_usage = include_usage

    def opening(self, prompt_tokens: Callable[[], int]) -> bytes:
        return b""

    def encode(self, chunk: ChatChunk) -> bytes:
        if not chunk.content and chunk.finish_reason is None:
            return b""
        choice = {"text": chunk.content or "", "index": 0, "logprobs": None, "finish_reason": chunk.finish_reason}
        return b"data: " + _encode({**self.head, "choices": [choice]}) + b"\n\n"

    def usage(self, u: Usage) -> bytes:
        return b"data: " + _encode({**self.head, "choices": [], "usage": _usage(u)}) + b"\n\n"

    def closing(self, cut: bool, usage: Usage, reported: bool) -> bytes:
        tail = self.encode(ChatChunk(finish_reason="length")) if cut else b""
        return tail + (self.usage(usage) if self.include_usage else b"") + DONE

    @staticmethod
    def failure(exc: GatewayError) -> bytes:
        return encode_stream_error(exc.status, exc.type, exc.message, exc.code)
