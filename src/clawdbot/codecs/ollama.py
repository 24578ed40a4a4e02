"""The Ollama dialect: one import for the provider adapter and for an Ollama-dialect inbound API.

The functions live in ollama_chat.py (/api/chat) and ollama_embed.py (/api/embed, /api/tags) to keep
each module to one concern; this module is the dialect's public face.
"""

from __future__ import annotations

from clawdbot.codecs.ollama_chat import (
    decode_chat_response,
    decode_stream_line,
    encode_chat_request,
    encode_chat_response,
    encode_stream_chunk,
    finish_reason,
    rfc3339,
)
from clawdbot.codecs.ollama_embed import (
    decode_embed_response,
    decode_tags,
    encode_embed_request,
    encode_embed_response,
)

__all__ = [
    "decode_chat_response",
    "decode_embed_response",
    "decode_stream_line",
    "decode_tags",
    "encode_chat_request",
    "encode_chat_response",
    "encode_embed_request",
    "encode_embed_response",
    "encode_stream_chunk",
    "finish_reason",
    "rfc3339",
]
