"""codecs/openai_responses.py: reasoning input items, which belong to the assistant turn after them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clawdbot.codecs import openai_responses as ro
from clawdbot.core.errors import BadRequest

REASONING = {"type": "reasoning", "summary": [{"type": "summary_text", "text": "thought"}]}
ASKED = {"role": "user", "content": "q"}


def parse(*items: dict[str, Any], **body: Any) -> ro.Parsed:
    return ro.parse(json.dumps({"model": "m", "input": list(items), **body}).encode())


@pytest.mark.parametrize(("items", "at"), [
    ([REASONING], 0),  # issue 14: was an empty prompt (or, with previous_response_id, the last one again)
    ([REASONING, REASONING], 0),
    ([ASKED, REASONING], 1),
    ([REASONING, ASKED], 0),
    ([ASKED, {"role": "assistant", "content": "a"}, REASONING, {"type": "function_call_output", "call_id": "c",
                                                                 "output": "r"}], 2),
])
def test_reasoning_that_no_assistant_turn_follows_is_a_400_naming_it(items: list[dict[str, Any]], at: int) -> None:
    with pytest.raises(BadRequest) as err:
        parse(*items, instructions="be brief")
    assert err.value.status == 400 and err.value.param == f"input[{at}]"
    assert "reasoning" in err.value.message and "following item" in err.value.message


def test_reasoning_goes_with_the_assistant_turn_after_it() -> None:
    call = {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}
    p = parse(ASKED, REASONING, call)
    assert p.turn[1].tool_calls is not None and p.turn[1].reasoning == "thought"
    p = parse(ASKED, {"role": "assistant", "content": ""}, REASONING, call)  # a call joining its turn
    assert len(p.turn) == 2 and p.turn[1].reasoning == "thought"
    p = parse(ASKED, REASONING, {"role": "assistant", "content": "a"}, ASKED)
    assert [m.role for m in p.turn] == ["user", "assistant", "user"] and p.turn[1].reasoning == "thought"
