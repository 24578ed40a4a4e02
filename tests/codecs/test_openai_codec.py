"""codecs/openai.py on the wire bytes real servers send: the captures of llama.cpp's server in
tests/fixtures/llamacpp/ (JSON with spaces, no usage in streams) and OpenAI-shaped ones."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from clawdbot.codecs import openai as oa
from clawdbot.codecs.sse import EventSplitter, event_data
from clawdbot.core.types import ChatRequest, Message, Usage

LLAMACPP = Path(__file__).resolve().parents[1] / "fixtures" / "llamacpp"
OPENAI = Path(__file__).resolve().parents[1] / "fixtures" / "openai"


def events(raw: bytes) -> list[bytes]:
    return [d for d in (event_data(e) for e in EventSplitter().feed(raw)) if d is not None]


@pytest.mark.parametrize(("capture", "outputs"), [
    (LLAMACPP / "chat_stream.sse", 4),  # role-only first event, 4 content events, an empty finish event
    (OPENAI / "chat_stream_usage.sse", 3),  # "echo:", " Say", " hello"; the first event's "" is none
    (OPENAI / "chat_tools_stream.sse", 4),  # the call's first delta and three argument fragments
])
def test_the_probe_finds_the_output_events_whatever_the_json_spacing(capture: Path, outputs: int) -> None:
    data = [d for d in events(capture.read_bytes()) if d != b"[DONE]"]
    probes = [oa.probe_stream_data(d, "s") for d in data]
    expected = sum(1 for d in data for c in json.loads(d)["choices"]
                   if c["delta"].get("content") or c["delta"].get("tool_calls"))
    assert sum(p.output() for p in probes) == expected == outputs


@pytest.mark.parametrize(("delta", "output"), [
    ('{"role": "assistant"}', False), ('{"content": null}', False), ('{"content": ""}', False),
    ('{"content": "x"}', True), ('{"content":"\\n"}', True), ('{"tool_calls": []}', False),
    ('{"tool_calls": [{"index": 0}]}', True), ('{"reasoning_content": "hm"}', True), ('{"reasoning": "hm"}', True),
    ('{}', False), ("null", False),
])
def test_what_counts_as_output(delta: str, output: bool) -> None:
    probe = oa.probe_stream_data(f'{{"choices": [{{"index": 0, "delta": {delta}}}]}}'.encode(), "s")
    assert probe.output() is output
    assert oa.probe_stream_data(b'{"choices":[],"usage":{"prompt_tokens":1}}', "s").output() is False


def test_llamacpp_streams_carry_no_usage_even_when_asked() -> None:
    data = [d for d in events((LLAMACPP / "chat_stream.sse").read_bytes()) if d != b"[DONE]"]
    assert all(oa.probe_stream_data(d, "s").usage is None for d in data)
    chunks = [oa.decode_stream_data(d) for d in data]
    assert "".join(c.content or "" for c in chunks if c) and chunks[-1] and chunks[-1].finish_reason == "length"


def test_a_llamacpp_completion_decodes() -> None:
    r = oa.decode_chat_response((LLAMACPP / "chat.json").read_bytes())
    assert r.message.content and r.finish_reason == "length" and r.usage == Usage(11, 4)


def test_closing_events_copy_the_last_events_head() -> None:
    last = events((LLAMACPP / "chat_stream.sse").read_bytes())[2]
    out = oa.closing_events(last, "length", Usage(7, 5))
    finish, usage = (json.loads(d) for d in events(out))
    head = json.loads(last)
    for chunk in (finish, usage):
        assert (chunk["id"], chunk["created"], chunk["model"]) == (head["id"], head["created"], head["model"])
    assert finish["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}]
    assert usage["choices"] == [] and usage["usage"] == {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    only_usage = events(oa.closing_events(b"not json", None, Usage(1, 2)))
    assert len(only_usage) == 1 and json.loads(only_usage[0])["usage"]["completion_tokens"] == 2
    assert len(events(oa.closing_events(last, "length", None))) == 1


BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":5,"logit_bias":{"1":2}}'


@pytest.mark.parametrize(("body", "field", "expected"), [
    (BODY, "max_tokens", {"max_tokens": 5}),
    (BODY, "max_completion_tokens", {"max_completion_tokens": 5}),
    (BODY.replace(b"max_completion_tokens", b"max_tokens"), "max_completion_tokens", {"max_completion_tokens": 5}),
    # both: max_completion_tokens wins, as in the canonical request
    (BODY.replace(b'"max_completion_tokens":5', b'"max_tokens":9,"max_completion_tokens":5'), "max_tokens",
     {"max_tokens": 5}),
    (BODY.replace(b'"max_completion_tokens":5', b'"max_tokens":null'), "max_tokens", {}),
])
def test_rewrite_sends_the_limit_under_the_name_the_upstream_honours(body: bytes, field: str,
                                                                      expected: dict[str, int]) -> None:
    out = json.loads(oa.rewrite_request(body, None, False, field))
    assert {k: v for k, v in out.items() if k in ("max_tokens", "max_completion_tokens")} == expected
    assert out["logit_bias"] == {"1": 2} and out["messages"] == [{"role": "user", "content": "hi"}]


def test_rewrite_to_a_stream_with_usage_keeps_everything_else() -> None:
    out = json.loads(oa.rewrite_request(BODY, "up", True, stream=True))
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True} and out["model"] == "up"
    assert out["max_completion_tokens"] == 5 and out["logit_bias"] == {"1": 2}


@pytest.mark.parametrize(("body", "field"), [
    (BODY, "max_completion_tokens"),
    (BODY.replace(b"max_completion_tokens", b"max_tokens"), "max_tokens"),
    (b'{"model":"m","messages":[{"role":"user","content":"hi"}]}', None),
])
def test_the_canonical_request_knows_which_field_the_client_used(body: bytes, field: str | None) -> None:
    _, req = oa.parse_chat_request(body)
    assert req.limit_field == field and req.max_tokens == (5 if field else None)


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_the_canonical_encoder_names_the_limit_as_told(field: str) -> None:
    req = ChatRequest("m", [Message("user", "hi")], max_tokens=7)
    body = msgspec.json.decode(oa.encode_chat_request(req, field))
    assert body[field] == 7 and len({"max_tokens", "max_completion_tokens"} & set(body)) == 1


LEGACY = [{"role": "user", "content": "time?"},
          {"role": "assistant", "content": None, "function_call": {"name": "now", "arguments": "{}"}},
          {"role": "function", "name": "now", "content": "12:00"},
          {"role": "function", "name": "later", "content": "13:00"}]


def test_legacy_function_messages_answer_their_call_by_id() -> None:
    """issue 14: the function_call was dropped and the function result had no id."""
    _, req = oa.parse_chat_request(json.dumps({"model": "m", "messages": LEGACY}).encode())
    call, answer, unmatched = req.messages[1:]
    assert call.tool_calls is not None and [(c.id, c.name) for c in call.tool_calls] == [("call_1_0", "now")]
    assert (answer.role, answer.name, answer.tool_call_id) == ("tool", "now", "call_1_0")
    assert (unmatched.name, unmatched.tool_call_id) == ("later", "call_3_later")  # no call: made up, named


def test_legacy_function_results_are_valid_anthropic_tool_results() -> None:
    from clawdbot.codecs import anthropic_upstream as au

    _, req = oa.parse_chat_request(json.dumps({"model": "m", "messages": LEGACY[:3]}).encode())
    turns = json.loads(au.encode_request(req, "m"))["messages"]
    use, result = turns[1]["content"][0], turns[2]["content"][0]
    assert (use["type"], use["name"], result["type"]) == ("tool_use", "now", "tool_result")
    assert result["tool_use_id"] == use["id"] == "call_1_0"


def test_a_function_message_needs_its_name() -> None:
    from clawdbot.core.errors import BadRequest

    with pytest.raises(BadRequest) as err:
        oa.parse_chat_request(b'{"model":"m","messages":[{"role":"function","content":"x"}]}')
    assert err.value.param == "messages[0].name"
