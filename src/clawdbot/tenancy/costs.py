"""What a request costs: a price table per model and a prompt token estimate.

Money is counted in integer micro-dollars (`MICROS` per USD) everywhere budgets and spend are kept:
sums of floats drift, and "spent <= budget" must be decidable exactly, in Python and in Redis' Lua
(whose numbers are doubles, exact for integers below 2**53, i.e. 9 billion USD).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import msgspec

MICROS = 1_000_000  # micro-dollars per USD
MESSAGE_OVERHEAD_TOKENS = 4  # role and separators per message, as OpenAI's chat format spends them
REPLY_PRIMING_TOKENS = 3  # the assistant turn every reply is primed with


class Price(msgspec.Struct, frozen=True):
    input_per_m: float  # USD per million prompt tokens
    output_per_m: float  # USD per million completion tokens


FREE = Price(0.0, 0.0)


class UnknownPrice(KeyError):
    """A model with no price and no default: budgets cannot be enforced for it, so say so."""


def to_micros(usd: float) -> int:
    """USD to micro-dollars, rounded up: a budget check must never under-count."""
    return math.ceil(round(usd * MICROS, 6))


class CostTable:
    """Model name -> Price. Local models cost nothing; an unpriced model is an error unless a default is given."""

    __slots__ = ("_default", "_local", "_prices")

    def __init__(
        self,
        prices: Mapping[str, Price | Mapping[str, float]],
        local: Iterable[str] = (),
        default: Price | None = None,
    ) -> None:
        self._prices = {name: p if isinstance(p, Price) else msgspec.convert(p, Price) for name, p in prices.items()}
        self._local = frozenset(local)
        self._default = default

    def price(self, model: str) -> Price:
        if model in self._local:
            return FREE
        found = self._prices.get(model)
        if found is not None:
            return found
        if self._default is not None:
            return self._default
        raise UnknownPrice(model)

    def cost_micros(self, model: str, prompt_tokens: int, completion_tokens: int) -> int:
        p = self.price(model)
        # one ceil over the exact sum, not one per term: prices are per million tokens
        return math.ceil(round(prompt_tokens * p.input_per_m + completion_tokens * p.output_per_m, 6))

    def worst_case_micros(self, model: str, prompt_estimate: int, max_tokens: int) -> int:
        """What to reserve before dispatch: the estimated prompt plus every token the reply may use."""
        return self.cost_micros(model, prompt_estimate, max_tokens)


def estimate_text_tokens(text: str) -> int:
    """An ESTIMATE, not a tokenizer: ~4 characters per token for English, rounded up.

    It is only used to reserve budget and TPM before a request runs; the real counts from the
    upstream's usage settle both afterwards.
    """
    return -(-len(text) // 4)


def estimate_prompt_tokens(messages: Sequence[Mapping[str, object]]) -> int:
    """Chat messages -> estimated prompt tokens: text chars/4 rounded up, plus per-message overhead.

    String contents and the text parts of a content list count; other values (images, tool calls)
    count by the length of their string form, which over-estimates rather than ignores them.
    """
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += MESSAGE_OVERHEAD_TOKENS
        for key, value in message.items():
            if key == "role":
                continue
            total += _value_tokens(value)
    return total


def _value_tokens(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return estimate_text_tokens(value)
    if isinstance(value, list):
        return sum(_value_tokens(part) for part in value)
    if isinstance(value, Mapping):
        text = value.get("text")
        if isinstance(text, str) and value.get("type", "text") == "text":
            return estimate_text_tokens(text)
    return estimate_text_tokens(str(value))
