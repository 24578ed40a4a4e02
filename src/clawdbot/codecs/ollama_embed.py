"""Ollama's /api/embed and /api/tags dialect <-> canonical types. Pure functions, no I/O."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from clawdbot.codecs.decoding import DECODE_ERRORS
from clawdbot.core.errors import UpstreamError
from clawdbot.core.types import EmbeddingRequest, EmbeddingResponse, Usage


class _Embed(msgspec.Struct):
    model: str = ""
    embeddings: list[list[float]] = []
    prompt_eval_count: int = 0
    error: Any = None


class _Model(msgspec.Struct):
    name: str


class _Tags(msgspec.Struct):
    models: list[_Model] | None = None  # Go encodes an empty list as null on some versions


_EMBED = msgspec.json.Decoder(_Embed)
_TAGS = msgspec.json.Decoder(_Tags)
_ENCODER = msgspec.json.Encoder()

T = TypeVar("T")


def encode_embed_request(req: EmbeddingRequest, model: str) -> bytes:
    body: dict[str, Any] = {"model": model, "input": req.input}
    if req.dimensions is not None:
        body["dimensions"] = req.dimensions
    return _ENCODER.encode(body)


def decode_embed_response(body: bytes) -> EmbeddingResponse:
    reply = _decode(_EMBED, body, "an embedding reply")
    if reply.error is not None:
        raise UpstreamError(f"Ollama error: {str(reply.error)[:300]}")
    return EmbeddingResponse(
        model=reply.model,
        vectors=reply.embeddings,
        usage=Usage(prompt_tokens=reply.prompt_eval_count),
    )


def encode_embed_response(resp: EmbeddingResponse) -> bytes:
    body: dict[str, Any] = {"model": resp.model, "embeddings": resp.vectors}
    if resp.usage.prompt_tokens:
        body["prompt_eval_count"] = resp.usage.prompt_tokens
    return _ENCODER.encode(body)


def decode_tags(body: bytes) -> list[str]:
    """The model names an Ollama server has pulled (name:tag)."""
    return [m.name for m in _decode(_TAGS, body, "a model list").models or ()]


def _decode(decoder: msgspec.json.Decoder[T], body: bytes, what: str) -> T:
    try:
        return decoder.decode(body)
    except DECODE_ERRORS as exc:
        raise UpstreamError(f"Ollama sent something that is not {what}: {exc}") from exc
