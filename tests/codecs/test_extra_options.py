"""Options without a canonical field (logit_bias, parallel_tool_calls, reasoning_effort, logprobs): kept from an
OpenAI request and, per upstream dialect, passed on, mapped, or refused by name; never dropped."""

from __future__ import annotations

import json

import pytest

from clawdbot.codecs import anthropic_upstream as au
from clawdbot.codecs import ollama as ol
from clawdbot.codecs import openai as oa
from clawdbot.core.errors import BadRequest
from clawdbot.core.types import ChatRequest, Message, Tool
from clawdbot.providers.local import check_request, completion_params


def parsed(**fields: object) -> ChatRequest:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], **fields}
    return oa.parse_chat_request(json.dumps(body).encode())[1]


def test_kept_from_the_openai_request_and_passed_to_openai_upstreams() -> None:
    req = parsed(logit_bias={"50256": -100}, parallel_tool_calls=False, reasoning_effort="low")
    assert req.extra == {"logit_bias": {"50256": -100}, "parallel_tool_calls": False, "reasoning_effort": "low"}
    body = json.loads(oa.encode_chat_request(req, "max_tokens"))
    assert body["logit_bias"] == {"50256": -100} and body["parallel_tool_calls"] is False
    assert body["reasoning_effort"] == "low"
    assert parsed().extra is None


def test_ollama_maps_reasoning_and_refuses_what_it_cannot_do() -> None:
    assert json.loads(ol.encode_chat_request(parsed(reasoning_effort="high"), "llama", None))["think"] is True
    with pytest.raises(BadRequest) as err:
        ol.encode_chat_request(parsed(logit_bias={"1": 5}), "llama", None)
    assert err.value.param == "logit_bias"
    tools = [{"type": "function", "function": {"name": "f"}}]
    with pytest.raises(BadRequest) as err:
        ol.encode_chat_request(parsed(tools=tools, parallel_tool_calls=False), "llama", None)
    assert err.value.param == "parallel_tool_calls"


def test_anthropic_maps_thinking_and_parallel_tools() -> None:
    req = ChatRequest("m", [Message("user", "x")], tools=[Tool("f")], max_tokens=8000,
                      extra={"reasoning_effort": "high", "parallel_tool_calls": False})
    body = json.loads(au.encode_request(req, "claude"))
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    for extra, param in (({"reasoning_effort": "high"}, "reasoning_effort"), ({"logit_bias": {"1": 1}}, "logit_bias")):
        with pytest.raises(BadRequest) as err:
            au.encode_request(ChatRequest("m", [Message("user", "x")], max_tokens=100, extra=extra), "claude")
        assert err.value.param == param


def test_the_embedded_model_takes_logit_bias_and_refuses_reasoning() -> None:
    check_request(parsed(logit_bias={"7": 2.0}, response_format={"type": "json_object"}))  # both honoured
    assert completion_params(parsed(logit_bias={"7": 2.0}))["logit_bias"] == {"7": 2.0}
    for fields, param in (({"reasoning_effort": "low"}, "reasoning_effort"), ({"logprobs": True}, "logprobs"),
                          ({"logprobs": True, "top_logprobs": 2}, "logprobs")):
        with pytest.raises(BadRequest) as err:
            check_request(parsed(**fields))
        assert err.value.param == param and err.value.code == "unsupported_parameter"
    check_request(parsed(reasoning_effort="none", logprobs=False))  # nothing asked that it cannot do


def test_log_probabilities_go_to_openai_upstreams_and_are_refused_by_the_others() -> None:
    req = parsed(logprobs=True, top_logprobs=3)
    assert req.extra == {"logprobs": True, "top_logprobs": 3}
    body = json.loads(oa.encode_chat_request(req, "max_tokens"))
    assert body["logprobs"] is True and body["top_logprobs"] == 3
    assert parsed(logprobs=False).extra is None  # not asked for: nothing to refuse anywhere
    json.loads(ol.encode_chat_request(parsed(logprobs=False), "llama", None))
    for encode in (lambda r: ol.encode_chat_request(r, "llama", None), lambda r: au.encode_request(r, "claude")):
        with pytest.raises(BadRequest) as err:
            encode(req)
        assert err.value.param == "logprobs" and "cannot be honoured" in err.value.message


def anthropic_parsed(thinking: object) -> ChatRequest:
    from clawdbot.codecs import anthropic as an

    body = {"model": "m", "max_tokens": 8000, "messages": [{"role": "user", "content": "x"}], "thinking": thinking}
    return an.parse_messages_request(json.dumps(body).encode())


@pytest.mark.parametrize(("thinking", "effort"), [
    ({"type": "enabled", "budget_tokens": 1024}, "low"), ({"type": "enabled", "budget_tokens": 2000}, "medium"),
    ({"type": "enabled", "budget_tokens": 16000}, "high"), ({"type": "adaptive"}, "medium"),
    ({"type": "disabled"}, None), (None, None)])
def test_anthropic_thinking_becomes_a_reasoning_effort(thinking: object, effort: str | None) -> None:
    req = anthropic_parsed(thinking)
    assert (req.extra or {}).get("reasoning_effort") == effort
    if effort is not None:  # and goes on as each upstream takes it
        assert json.loads(oa.encode_chat_request(req, "max_tokens"))["reasoning_effort"] == effort
        assert json.loads(ol.encode_chat_request(req, "llama", None))["think"] is True


@pytest.mark.parametrize("thinking", [{"type": "enabled"}, {"type": "enabled", "budget_tokens": 0},
                                      {"type": "sometimes"}])
def test_a_thinking_setting_that_cannot_be_read_is_refused(thinking: object) -> None:
    with pytest.raises(BadRequest) as err:
        anthropic_parsed(thinking)
    assert (err.value.param or "").startswith("thinking.")


@pytest.mark.parametrize(("thinking", "sent"), [
    ({"type": "enabled", "budget_tokens": 1500}, 1500), ({"type": "enabled", "budget_tokens": 5000}, 5000),
    ({"type": "adaptive"}, 2048)])  # adaptive has no number: its effort's (medium)
def test_an_anthropic_budget_goes_back_to_anthropic_as_sent(thinking: object, sent: int) -> None:
    """issue 14: 5000 went back as 4096 (high's budget), 1500 as 2048."""
    req = anthropic_parsed(thinking)
    assert json.loads(au.encode_request(req, "m"))["thinking"] == {"type": "enabled", "budget_tokens": sent}
    assert "budget_tokens" not in oa.encode_chat_request(req, "max_tokens").decode()  # others get the effort


def test_a_budget_not_below_max_tokens_is_refused_naming_it() -> None:
    with pytest.raises(BadRequest) as err:
        au.encode_request(anthropic_parsed({"type": "enabled", "budget_tokens": 8000}), "m")
    assert err.value.param == "thinking.budget_tokens" and "8000" in err.value.message
