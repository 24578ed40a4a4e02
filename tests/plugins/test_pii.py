# ruff: noqa: RUF001  (the Chinese test text is full of full-width punctuation on purpose)
"""The pii plugin through its hooks, with real requests, responses, chunks and contexts: masking
round trips (pre then post), streamed restores with placeholders split anywhere, one placeholder per
value, redact and block modes, settings, and that no value reaches a note or a log."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any

import msgspec
import pytest

from clawdbot.core.context import RequestContext
from clawdbot.core.errors import BadRequest
from clawdbot.core.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from clawdbot.plugins.base import PluginConfigError
from clawdbot.plugins.pii import PiiPlugin, PiiSettings
from clawdbot.plugins.pii_mask import PLACEHOLDER, Masker, PiiBlocked, StreamRestorer
from tests.plugins.support import LocalHost

EMAIL = "sarah.connor@example.com"
PHONE = "13812345678"
CARD = "4111 1111 1111 1111"
CN_ID = "11010519491231002X"
IBAN = "DE89 3704 0044 0532 0130 00"
SECRET = "sk-proj-abc123DEF456ghi789JKL012mno345"
PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"
PEM = f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----"
VALUES = [EMAIL, PHONE, CARD, CN_ID, IBAN, SECRET, PEM, "203.0.113.7", "+1 415-555-0132"]


def plugin(**settings: Any) -> PiiPlugin:
    return PiiPlugin(msgspec.convert(settings, PiiSettings), LocalHost())


def ctx() -> RequestContext:
    return RequestContext(request_id="test")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def request(*messages: Message, stream: bool = False) -> ChatRequest:
    return ChatRequest(model="m", messages=list(messages), stream=stream)


def answer(content: str | None, calls: list[ToolCall] | None = None) -> ChatResponse:
    return ChatResponse(id="r", model="m", created=1, message=Message(role="assistant", content=content,
                                                                      tool_calls=calls))


def dump(obj: Any) -> str:
    return msgspec.json.encode(obj).decode()


def conversation() -> ChatRequest:
    tool_args = json.dumps({"to": EMAIL, "note": f"电话{PHONE}"})  # ensure_ascii: 电话 becomes \uXXXX
    return request(
        Message(role="system", content=f"Escalations go to {EMAIL}."),
        Message(role="user", content=[TextPart(f"我的电话{PHONE}，卡号{CARD}。"), ImagePart(url="https://x/y.png"),
                                      TextPart(f"Key: {SECRET}")]),
        Message(role="assistant", content=None, tool_calls=[ToolCall(id="c1", name="send", arguments=tool_args)]),
        Message(role="tool", tool_call_id="c1", content=json.dumps({"ok": True, "phone": int(PHONE), "id": CN_ID})),
        Message(role="user", content=f"Also my IBAN is {IBAN} and my email is {EMAIL.upper()}; key:\n{PEM}"),
    )


# -- settings ---------------------------------------------------------------------------------

def test_settings_defaults_and_needs() -> None:
    p = plugin()
    s = p.settings
    assert (s.mode, s.types, s.restore, s.presidio) == ("mask", None, True, False)
    assert set(s.apply_to) == {"system", "developer", "user", "assistant", "tool"}
    assert p.needs == "response" and p.guard is True and p.name == "pii"
    assert plugin(mode="redact").needs == "request"
    assert plugin(mode="block").needs == "request"
    assert plugin(restore=False).needs == "request"


@pytest.mark.parametrize("settings,words", [
    ({"types": ["EMAIL", "SSN"]}, "SSN"),
    ({"types": ["PERSON"]}, "presidio: true"),
    ({"apply_to": ["user", "robot"]}, "robot"),
    ({"mode": "hide"}, "mode"),
    ({"colour": "red"}, "colour"),
])
def test_settings_errors_name_the_setting(settings: dict[str, Any], words: str) -> None:
    with pytest.raises(PluginConfigError, match=words):
        PiiPlugin(settings, LocalHost())


def test_settings_struct_forbids_unknown_fields() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"mode": "mask", "extra": 1}, PiiSettings)
    assert plugin(types=["email", "phone"])._types == ("EMAIL", "PHONE")


# -- mask: request and whole answer -------------------------------------------------------------

def test_mask_round_trip_through_pre_and_post() -> None:
    p, c = plugin(), ctx()
    masked = run(p.pre(conversation(), c))
    assert isinstance(masked, ChatRequest)
    wire = dump(masked)
    for v in [EMAIL, EMAIL.upper(), PHONE, CARD, CN_ID, IBAN, SECRET, PEM_BODY]:
        assert v not in wire, v
    # The same value is the same placeholder in every message (the e-mail in upper case too).
    assert masked.messages[0].content == "Escalations go to <EMAIL_1>."
    assert "<EMAIL_1>" in masked.messages[4].content  # type: ignore[operator]
    parts = masked.messages[1].content
    assert isinstance(parts, list) and isinstance(parts[1], ImagePart)
    assert parts[0] == TextPart("我的电话<PHONE_1>，卡号<CARD_1>。") and parts[2] == TextPart("Key: <SECRET_1>")
    # Tool-call arguments are JSON: decoded (the \\u escapes seen as 电话), masked, still JSON.
    args = json.loads(masked.messages[2].tool_calls[0].arguments)  # type: ignore[index]
    assert args == {"to": "<EMAIL_1>", "note": "电话<PHONE_1>"}
    # A tool result's number that is wholly a phone becomes its placeholder.
    assert json.loads(masked.messages[3].content) == {"ok": True, "phone": "<PHONE_1>", "id": "<CN_ID_1>"}  # type: ignore[arg-type]
    assert c.plugin_notes == ["pii: masked 11 items (CARD 1, CN_ID 1, EMAIL 3, IBAN 1, PHONE 3, SECRET 2)"]

    reply = answer("I will email <EMAIL_1> and call <PHONE_1>; card <CARD_1>, IBAN <IBAN_1>, "
                   "and an unknown <EMAIL_9> stays.",
                   [ToolCall(id="t", name="store", arguments='{"key": "<SECRET_2>", "id": "<CN_ID_1>"}')])
    out = run(p.post(reply, c))
    assert isinstance(out, ChatResponse)
    assert out.message.content == (f"I will email {EMAIL} and call {PHONE}; card {CARD}, IBAN {IBAN}, "
                                   "and an unknown <EMAIL_9> stays.")
    # The PEM's newlines land in a JSON string: escaped, so the arguments stay valid JSON.
    assert json.loads(out.message.tool_calls[0].arguments) == {"key": PEM, "id": CN_ID}  # type: ignore[index]


def test_post_restores_text_parts_and_reasoning() -> None:
    p, c = plugin(), ctx()
    run(p.pre(request(Message(role="user", content=f"mail {EMAIL}")), c))
    reply = ChatResponse(id="r", model="m", created=1, message=Message(
        role="assistant", content=[TextPart("to <EMAIL_1>"), ImagePart(url="u")], reasoning="user gave <EMAIL_1>"))
    out = run(p.post(reply, c))
    assert out.message.content[0] == TextPart(f"to {EMAIL}") and out.message.reasoning == f"user gave {EMAIL}"


def test_same_value_same_placeholder_across_spellings() -> None:
    p, c = plugin(), ctx()
    req = request(Message(role="user", content="a 138 1234 5678 b +86 13812345678 c 13812345678 d 13912345678"),
                  Message(role="user", content="x@y.com X@Y.COM 2001:DB8::1 2001:db8:0::1"))
    masked = run(p.pre(req, c))
    assert masked.messages[0].content == "a <PHONE_1> b <PHONE_1> c <PHONE_1> d <PHONE_2>"
    assert masked.messages[1].content == "<EMAIL_1> <EMAIL_1> <IP_1> <IP_1>"
    # The answer gets back the spelling seen first.
    out = run(p.post(answer("<PHONE_1>"), c))
    assert out.message.content == "138 1234 5678"


def test_client_written_placeholders_keep_their_meaning() -> None:
    p, c = plugin(), ctx()
    req = request(Message(role="user", content=f"Template: Dear <EMAIL_1>, ... Real address: {EMAIL}"))
    masked = run(p.pre(req, c))
    assert masked.messages[0].content == "Template: Dear <EMAIL_1>, ... Real address: <EMAIL_2>"
    out = run(p.post(answer("Fill <EMAIL_1> with <EMAIL_2>"), c))
    assert out.message.content == f"Fill <EMAIL_1> with {EMAIL}"


def test_apply_to_limits_the_roles() -> None:
    p, c = plugin(apply_to=["user"]), ctx()
    masked = run(p.pre(request(Message(role="system", content=EMAIL), Message(role="user", content=EMAIL)), c))
    assert masked.messages[0].content == EMAIL and masked.messages[1].content == "<EMAIL_1>"


def test_nothing_found_changes_nothing() -> None:
    p, c = plugin(), ctx()
    req = request(Message(role="user", content="Order 20240115 shipped at 13:45, version 1.2.3, total $49.99"))
    assert run(p.pre(req, c)) is None
    assert c.plugin_notes is None and c.plugin_state is None
    chunk = ChatChunk(content="<EMAIL_1> hello")
    assert p.on_chunk(chunk, c) is chunk and p.on_stream_end(c) is None
    assert run(p.post(answer("<EMAIL_1>"), c)) is None


def test_post_without_placeholders_changes_nothing() -> None:
    p, c = plugin(), ctx()
    run(p.pre(request(Message(role="user", content=EMAIL)), c))
    assert run(p.post(answer("Nothing of yours here."), c)) is None


def test_a_long_document_is_masked_off_the_event_loop() -> None:
    p, c = plugin(), ctx()
    doc = ("Lorem ipsum dolor sit amet, order 20240115 shipped. " * 800) + f" Contact {EMAIL} or {PHONE}."
    assert len(doc) > 32_768
    masked = run(p.pre(request(Message(role="user", content=doc)), c))
    assert masked.messages[0].content.endswith(" Contact <EMAIL_1> or <PHONE_1>.")


def test_requests_do_not_share_mappings() -> None:
    p, c1, c2 = plugin(), ctx(), ctx()
    run(p.pre(request(Message(role="user", content="a@b.co")), c1))
    run(p.pre(request(Message(role="user", content="z@y.co")), c2))
    assert run(p.post(answer("<EMAIL_1>"), c1)).message.content == "a@b.co"
    assert run(p.post(answer("<EMAIL_1>"), c2)).message.content == "z@y.co"


def test_restore_false_leaves_placeholders() -> None:
    p, c = plugin(restore=False), ctx()
    masked = run(p.pre(request(Message(role="user", content=EMAIL)), c))
    assert masked.messages[0].content == "<EMAIL_1>"
    assert run(p.post(answer("<EMAIL_1>"), c)) is None
    assert p.on_chunk(ChatChunk(content="<EMAIL_1>"), c) == ChatChunk(content="<EMAIL_1>")


# -- mask: streams ----------------------------------------------------------------------------

def stream_through(p: PiiPlugin, c: RequestContext, pieces: list[str]) -> str:
    out: list[str] = []
    for piece in pieces:
        ch = p.on_chunk(ChatChunk(content=piece), c)
        if ch is not None and ch.content:
            out.append(ch.content)
    end = p.on_stream_end(c)
    if end is not None and end.content:
        out.append(end.content)
    return "".join(out)


def masked_context(p: PiiPlugin) -> RequestContext:
    c = ctx()
    text = f"{EMAIL} {PHONE} {CARD} {CN_ID} {IBAN} {SECRET} " + " ".join(f"u{i}@example.com" for i in range(12))
    run(p.pre(request(Message(role="user", content=text), stream=True), c))
    return c


ANSWER = ("Hi <EMAIL_1>! I called <PHONE_1>, charged <CARD_1> (id <CN_ID_1>), paid <IBAN_1>, rotated "
          "<SECRET_1>; cc <EMAIL_12> and <EMAIL_3>. Not ours: <EMAIL_99>, a < b, <PHONE_, <<EMAIL_1>>.")


def expected(text: str, c: RequestContext) -> str:
    originals = c.plugin_state["pii"].masker.originals  # type: ignore[index]
    return PLACEHOLDER.sub(lambda m: originals.get(m.group(), m.group()), text)


def test_stream_restores_a_placeholder_split_at_every_position() -> None:
    p = plugin()
    for ph in ("<EMAIL_1>", "<PHONE_1>", "<EMAIL_12>", "<CN_ID_1>", "<SECRET_1>"):
        text = f"say {ph} now"
        for cut in range(len(text) + 1):
            c = masked_context(p)
            assert stream_through(p, c, [text[:cut], text[cut:]]) == expected(text, c), (ph, cut)
        for a in range(1, len(text)):  # and cut in three
            for b in range(a + 1, len(text)):
                c = masked_context(p)
                assert stream_through(p, c, [text[:a], text[a:b], text[b:]]) == expected(text, c), (ph, a, b)


def test_stream_random_chunk_sizes_seeded() -> None:
    p = plugin()
    rng = random.Random(1234)
    for _ in range(300):
        c = masked_context(p)
        pieces, i = [], 0
        while i < len(ANSWER):
            n = rng.choice([1, 1, 2, 3, 5, 8, 13, 40])
            pieces.append(ANSWER[i:i + n])
            i += n
        assert stream_through(p, c, pieces) == expected(ANSWER, c)


def test_stream_holds_nothing_that_cannot_be_a_placeholder() -> None:
    p = plugin()
    rng = random.Random(99)
    alphabet = "<>_EMAILPHONE1234 ab"
    for _ in range(200):
        c = masked_context(p)
        st = c.plugin_state["pii"]  # type: ignore[index]
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) + " <PHONE_1> <EMAIL_12>"
        out: list[str] = []
        for k in range(0, len(text), 3):
            ch = p.on_chunk(ChatChunk(content=text[k:k + 3]), c)
            held = st.restorer("content").held
            # What is held is a proper prefix of one of this request's placeholders, or nothing.
            assert held == "" or (held in st.masker.prefixes and len(held) < st.masker.max_len)
            out.append(ch.content or "" if ch else "")
        end = p.on_stream_end(c)
        out.append(end.content or "" if end else "")
        assert "".join(out) == expected(text, c)


def test_stream_holds_only_what_can_still_be_a_placeholder() -> None:
    masker = Masker()
    masker.placeholder("EMAIL", EMAIL)
    masker.placeholder("PHONE", PHONE)
    r = StreamRestorer(masker)
    assert r.feed("Hello <") == "Hello " and r.held == "<"
    assert r.feed("EMA") == "" and r.held == "<EMA"
    assert r.feed("X") == "<EMAX" and r.held == ""  # it cannot be one any more: released at once
    assert r.feed("a <b") == "a <b" and r.held == ""  # "<b" starts no placeholder of this request
    assert r.feed("x <PHONE_") == "x " and r.held == "<PHONE_"
    assert r.feed("1>!") == f"{PHONE}!" and r.held == ""
    assert r.feed("<EMAIL_2") == "<EMAIL_2" and r.held == ""  # only placeholders it handed out are held
    assert r.feed("<<EMAIL_1") == "<" and r.held == "<EMAIL_1"
    assert r.flush() == "<EMAIL_1" and r.held == ""
    assert len(max(masker.prefixes, key=len)) == masker.max_len - 1


def test_stream_chunk_fields_and_finish() -> None:
    p = plugin()
    c = masked_context(p)
    first = ChatChunk(role="assistant", content="")
    assert p.on_chunk(first, c) is first  # nothing to do: the same chunk
    assert p.on_chunk(ChatChunk(content="mail <EMA"), c) == ChatChunk(content="mail ")
    assert p.on_chunk(ChatChunk(content="IL"), c) is None  # all held: the chunk is held back
    # The finish reason ends the answer: what is held goes out with it, not after it.
    last = p.on_chunk(ChatChunk(content="_1", finish_reason="stop"), c)
    assert last == ChatChunk(content="<EMAIL_1", finish_reason="stop")
    usage = ChatChunk(usage=Usage(3, 4))
    assert p.on_chunk(usage, c) is usage and p.on_stream_end(c) is None


def test_stream_restores_reasoning_and_tool_call_arguments() -> None:
    p = plugin()
    c = masked_context(p)
    a = p.on_chunk(ChatChunk(reasoning="user is <EMA", tool_calls=[
        ToolCallDelta(index=0, id="c1", name="send", arguments='{"to": "<EMAI')]), c)
    assert a is not None and a.reasoning == "user is " and a.tool_calls == [
        ToolCallDelta(index=0, id="c1", name="send", arguments='{"to": "')]
    b = p.on_chunk(ChatChunk(reasoning="IL_1>.", tool_calls=[ToolCallDelta(index=0, arguments='L_1>", "k": "<SEC')]), c)
    assert b is not None and b.reasoning == f"{EMAIL}."
    assert b.tool_calls == [ToolCallDelta(index=0, arguments=f'{EMAIL}", "k": "')]
    end = p.on_stream_end(c)
    assert end == ChatChunk(tool_calls=[ToolCallDelta(index=0, arguments="<SEC")])


# -- redact and block -------------------------------------------------------------------------

def test_redact_is_one_way() -> None:
    p, c = plugin(mode="redact"), ctx()
    out = run(p.pre(conversation(), c))
    assert out.messages[0].content == "Escalations go to [EMAIL]."
    wire = dump(out)
    assert all(v not in wire for v in (EMAIL, PHONE, CARD, CN_ID, IBAN, SECRET))
    assert c.plugin_state is None and c.plugin_notes and c.plugin_notes[0].startswith("pii: redacted 11 items")
    assert run(p.post(answer("[EMAIL] <EMAIL_1>"), c)) is None


def test_block_refuses_naming_types_not_values() -> None:
    p, c = plugin(mode="block"), ctx()
    with pytest.raises(PiiBlocked) as e:
        run(p.pre(conversation(), c))
    err = e.value
    assert isinstance(err, BadRequest) and err.status == 400 and err.code == "pii_detected"
    assert "CARD, CN_ID, EMAIL, IBAN, PHONE, SECRET" in err.message
    assert all(v not in err.message for v in (EMAIL, PHONE, CARD, CN_ID, IBAN, SECRET))
    assert c.plugin_notes == ["pii: blocked: CARD, CN_ID, EMAIL, IBAN, PHONE, SECRET"]
    assert run(p.pre(request(Message(role="user", content="nothing personal here")), ctx())) is None


def test_block_only_the_configured_types() -> None:
    p = plugin(mode="block", types=["CN_ID"])
    assert run(p.pre(request(Message(role="user", content=f"{EMAIL} {PHONE}")), ctx())) is None
    with pytest.raises(PiiBlocked, match="CN_ID"):
        run(p.pre(request(Message(role="user", content=f"身份证{CN_ID}")), ctx()))


# -- nothing leaks to notes or logs ------------------------------------------------------------------

def test_notes_and_logs_never_carry_values(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    notes: list[str] = []
    for mode in ("mask", "redact", "block"):
        p, c = plugin(mode=mode), ctx()
        try:
            run(p.pre(conversation(), c))
            run(p.post(answer("<EMAIL_1> <PHONE_1>"), c))
            p.on_chunk(ChatChunk(content="<EMAIL_1>"), c)
            p.on_stream_end(c)
        except PiiBlocked as e:
            notes.append(e.message)
        notes.extend(c.plugin_notes or [])
    text = "\n".join(notes) + "\n" + caplog.text
    for v in [*VALUES, EMAIL.upper(), str(int(PHONE))]:
        assert v not in text, v
    assert len(notes) == 4
