"""Bounds on numbers a dialect's request passes upstream, checked by the API handlers after the
codec decoded the body (the codecs' structs take any integer). /openapi.json states the same
constants (api/openapi_dialects.py), so the document and the check cannot drift apart."""

from __future__ import annotations

from clawdbot.core.errors import BadRequest

MAX_OUTPUT_TOKENS = 2**31 - 1  # a 32-bit count, as model servers hold it (llama.cpp: int32)
MAX_DIMENSIONS = 16_384  # embedding dimensions: the largest models have 4,096


def check_output_limit(value: int | None, param: str) -> None:
    """An output limit (max_tokens and its names in each dialect): 1 to MAX_OUTPUT_TOKENS."""
    if value is not None and not 1 <= value <= MAX_OUTPUT_TOKENS:
        raise BadRequest(f"Invalid '{param}': must be from 1 to {MAX_OUTPUT_TOKENS}.", param=param,
                         code="invalid_value")


def check_dimensions(value: int | None) -> None:
    if value is not None and not 1 <= value <= MAX_DIMENSIONS:
        raise BadRequest(f"Invalid 'dimensions': must be from 1 to {MAX_DIMENSIONS}.", param="dimensions",
                         code="invalid_value")
