from __future__ import annotations

import pytest

from clawdbot.tenancy.costs import (
    MESSAGE_OVERHEAD_TOKENS,
    REPLY_PRIMING_TOKENS,
    CostTable,
    Price,
    UnknownPrice,
    estimate_prompt_tokens,
    estimate_text_tokens,
    to_micros,
)


def test_prices_from_dict_and_local_models_are_free() -> None:
    table = CostTable(
        {"gpt-4o": {"input_per_m": 2.5, "output_per_m": 10.0}, "mini": Price(0.15, 0.6)},
        local=["gemma3:270m"],
    )
    # 1000 prompt tokens at $2.5/M + 500 completion at $10/M = $0.0025 + $0.005
    assert table.cost_micros("gpt-4o", 1000, 500) == 7500
    assert table.cost_micros("mini", 1, 1) == 1  # 0.75 micro-dollars rounds up, never down
    assert table.cost_micros("gemma3:270m", 10**6, 10**6) == 0
    assert table.worst_case_micros("gpt-4o", 100, 1000) == table.cost_micros("gpt-4o", 100, 1000) == 10250
    with pytest.raises(UnknownPrice):
        table.price("unknown")
    assert CostTable({}, default=Price(1.0, 1.0)).cost_micros("anything", 1, 1) == 2


def test_to_micros_rounds_up_without_float_noise() -> None:
    assert to_micros(0.1) == 100_000
    assert to_micros(1.0000001) == 1_000_001
    assert to_micros(0) == 0


def test_prompt_estimate_is_chars_over_four_plus_overhead() -> None:
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("abcd") == 1
    assert estimate_text_tokens("abcde") == 2
    messages: list[dict[str, object]] = [
        {"role": "system", "content": "x" * 8},
        {"role": "user", "content": [{"type": "text", "text": "y" * 9}, {"type": "image_url", "image_url": "u"}]},
    ]
    image_part = estimate_text_tokens(str({"type": "image_url", "image_url": "u"}))
    assert estimate_prompt_tokens(messages) == REPLY_PRIMING_TOKENS + 2 * MESSAGE_OVERHEAD_TOKENS + 2 + 3 + image_part
