"""The head of a /v1 request body as tenancy needs it before dispatch: the model (allowed models),
the prompt's size and max_tokens (rate limits and budgets). Decoded only for callers with something
to check; the handler still parses and validates the whole body itself."""

from __future__ import annotations

from typing import Any

import msgspec

from clawdbot.tenancy.costs import estimate_prompt_tokens, estimate_text_tokens

METERED = frozenset({"/v1/chat/completions", "/chat/completions", "/v1/embeddings", "/embeddings"})


class Head(msgspec.Struct):
    model: str | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    messages: list[dict[str, Any]] | None = None
    input: Any = None  # embeddings

    def prompt_estimate(self) -> int:
        if self.messages is not None:
            return estimate_prompt_tokens(self.messages)
        if isinstance(self.input, str):
            return estimate_text_tokens(self.input)
        if isinstance(self.input, list):
            return sum(estimate_text_tokens(v) if isinstance(v, str) else (len(v) if isinstance(v, list) else 1)
                       for v in self.input)
        return 0

    def completion_cap(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


_decode = msgspec.json.Decoder(Head).decode


def read_head(body: bytes) -> Head | None:
    """None for a body that is not a valid request: the handler says what is wrong with it."""
    try:
        return _decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
