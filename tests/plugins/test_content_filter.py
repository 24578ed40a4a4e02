"""The content_filter plugin, through its hooks, with real requests, chunks and rule files."""

# ruff: noqa: RUF001 (Chinese text, full-width punctuation)
from __future__ import annotations

import itertools
import logging
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest

from clawdbot.core.errors import GatewayError
from clawdbot.core.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    TextPart,
    ToolCallDelta,
)
from clawdbot.plugins.base import PluginConfigError
from clawdbot.plugins.content_filter import ContentFilter, ContentFiltered, ContentFilterSettings
from clawdbot.plugins.filter_rules import Rule, RuleSet, StreamBuffer

from .support import LocalHost, context, run, stream


def make(config_dir: str = ".", clock: Any = None, **settings: Any) -> ContentFilter:
    s = msgspec.convert(settings, ContentFilterSettings)
    if clock is None:
        return ContentFilter(s, LocalHost(config_dir))
    return ContentFilter(s, LocalHost(config_dir), clock=clock)


def ask(*texts: str, role: str = "user") -> ChatRequest:
    return ChatRequest(model="m", messages=[Message(role=role, content=t) for t in texts])


def refused(plugin: ContentFilter, request: ChatRequest) -> ContentFiltered:
    ctx = context()
    with pytest.raises(ContentFiltered) as info:
        run(plugin.pre(request, ctx))
    assert ctx.plugin_notes and ctx.plugin_notes[-1].startswith("content_filter: blocked input by rule set")
    return info.value


def passes(plugin: ContentFilter, request: ChatRequest) -> None:
    assert run(plugin.pre(request, context())) is None


def answer(text: str, reasoning: str | None = None) -> ChatResponse:
    return ChatResponse(id="r", model="m", created=0, message=Message(role="assistant", content=text,
                                                                        reasoning=reasoning))


# -- settings -------------------------------------------------------------------------------------

def test_settings_are_checked_and_needs_follows_the_rules() -> None:
    assert make(input={"keywords": ["x"]}).needs == "request"
    assert make(output={"keywords": ["x"]}).needs == "response"
    assert make(input={"keywords": ["x"]}, output={"regex": ["y+"]}).needs == "response"
    assert make(injection=True).needs == "request"
    assert ContentFilter.guard is True
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        make(input={"keyword": ["typo"]})
    with pytest.raises(msgspec.ValidationError):
        make(action="drop", input={"keywords": ["x"]})
    with pytest.raises(PluginConfigError, match="nothing to do"):
        make()
    with pytest.raises(PluginConfigError, match=r"regex 2: bad regex"):
        make(input={"regex": [r"ok\d", r"(unclosed"]})
    with pytest.raises(PluginConfigError, match="empty string"):
        make(input={"regex": [r"x*"]})


# -- input: keywords and regexes ----------------------------------------------------------------

def test_keywords_are_case_insensitive_whole_words_and_never_echoed() -> None:
    p = make(input={"keywords": ["forbidden topic", "Bad"]})
    err = refused(p, ask("Tell me about the FORBIDDEN Topic please"))
    assert (err.status, err.code, err.type) == (400, "content_filtered", "invalid_request_error")
    assert "rule set 'input'" in err.message and "keyword 1" in err.message
    assert "forbidden" not in err.message.lower()
    assert isinstance(err, GatewayError)
    refused(p, ask("that was BAD."))
    passes(p, ask("badminton is a sport; a badge"))  # whole words for Latin keywords
    loose = make(whole_words=False, input={"keywords": ["bad"]})
    refused(loose, ask("badminton"))


def test_chinese_keywords_match_anywhere_and_latin_next_to_chinese_is_a_word() -> None:
    p = make(input={"keywords": ["坏人", "bad"]})
    err = refused(p, ask("他是一个坏人吗"))
    assert "keyword 1" in err.message and "坏人" not in err.message
    refused(p, ask("我觉得bad不好"))  # Han characters around a Latin keyword are not letters of it
    passes(p, ask("好人好事"))


def test_every_message_role_and_text_part_is_scanned_images_are_not() -> None:
    p = make(input={"keywords": ["secret"]})
    refused(p, ask("the secret", role="system"))
    refused(p, ask("a secret", role="tool"))
    refused(p, ask("ok", "my secret"))  # the second message
    parts = ChatRequest(model="m", messages=[Message(role="user", content=[
        TextPart("look at this"), ImagePart(url="https://x.example/secret.png"), TextPart("Secret!")])])
    refused(p, parts)
    image_only = ChatRequest(model="m", messages=[Message(role="user", content=[
        ImagePart(url="https://x.example/secret.png")])])
    passes(p, image_only)


def test_regexes_are_case_insensitive_and_name_their_rule() -> None:
    p = make(input={"regex": [r"\bsk-[a-z0-9]{8,}", r"\d{3}-\d{4}", r"(?i)ABC(\d)\1"]})
    err = refused(p, ask("key: SK-ABCD1234XYZ"))
    assert "regex 1" in err.message and "SK-" not in err.message
    assert "regex 2" in refused(p, ask("call 555-1234")).message
    assert "regex 3" in refused(p, ask("abc77")).message  # a back-reference: compiled on its own
    passes(p, ask("abc78 and 12-34 and sk-short"))


def test_longest_keyword_wins_and_redact_replaces_every_match() -> None:
    p = make(action="redact", input={"keywords": ["bad", "bad word", "脏话"], "regex": [r"\b\d{4}-\d{4}\b"]})
    original = ask("a Bad Word, a bad one, 说脏话", "card 1234-5678")
    ctx = context()
    got = run(p.pre(original, ctx))
    assert isinstance(got, ChatRequest)
    assert [m.content for m in got.messages] == ["a ***, a *** one, 说***", "card ***"]
    assert original.messages[0].content == "a Bad Word, a bad one, 说脏话"  # not changed in place
    assert ctx.plugin_notes == ["content_filter: redacted 4 input matches"]
    parts = ChatRequest(model="m", messages=[Message(role="user", content=[TextPart("bad"), ImagePart(url="u")])])
    changed = run(p.pre(parts, context()))
    assert isinstance(changed, ChatRequest)
    assert changed.messages[0].content == [TextPart("***"), ImagePart(url="u")]
    assert run(p.pre(ask("fine"), context())) is None


def test_status_403_and_per_set_names_and_actions() -> None:
    p = make(status=403, input={"name": "profanity", "keywords": ["darn"]},
             output={"action": "redact", "keywords": ["darn"]})
    err = refused(p, ask("darn it"))
    assert err.status == 403 and "rule set 'profanity'" in err.message
    assert p.output_rules is not None and p.output_rules.action == "redact"


# -- rule files and hot reload -------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rule_files_comments_relative_paths_and_line_ids(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "words.txt").write_text("# profanity\n\n  darn  \n# more\nheck\n", encoding="utf-8")
    (tmp_path / "rules" / "re.txt").write_text("# ids\n\\bid-\\d{6}\\b\n", encoding="utf-8")
    p = make(str(tmp_path), input={"keyword_files": ["rules/words.txt"], "regex_files": ["rules/re.txt"]})
    assert "rules/words.txt:3" in refused(p, ask("darn")).message
    assert "rules/words.txt:5" in refused(p, ask("oh HECK")).message
    assert "rules/re.txt:2" in refused(p, ask("id-123456")).message
    passes(p, ask("# profanity"))
    with pytest.raises(PluginConfigError, match=r"missing\.txt: cannot read"):
        make(str(tmp_path), input={"keyword_files": ["missing.txt"]})
    (tmp_path / "bad.txt").write_text("ok\n(broken\n", encoding="utf-8")
    with pytest.raises(PluginConfigError, match=r"bad.txt:2: bad regex"):
        make(str(tmp_path), input={"regex_files": ["bad.txt"]})


def test_files_are_reloaded_after_the_interval_off_the_request(tmp_path: Path) -> None:
    words = tmp_path / "words.txt"
    words.write_text("alpha\n", encoding="utf-8")
    clock = Clock()
    p = make(str(tmp_path), clock, reload_interval=5, input={"keyword_files": ["words.txt"]})

    async def scenario() -> None:
        first = p.input_rules
        words.write_text("alpha\nbravo\n", encoding="utf-8")
        clock.now += 4.9  # before the interval: the files are not even looked at
        assert await p.pre(ask("bravo"), context()) is None
        await p.reloaded()
        assert p.input_rules is first
        clock.now += 0.2  # due: this request schedules the reload and still runs on the old rules
        assert await p.pre(ask("bravo"), context()) is None
        await p.reloaded()  # the rebuild ran in a worker thread
        assert p.input_rules is not first
        with pytest.raises(ContentFiltered, match=r"words\.txt:2"):
            await p.pre(ask("Bravo"), context())
        # unchanged files: looked at again after the interval, nothing rebuilt
        second = p.input_rules
        clock.now += 5
        await p.pre(ask("x"), context())
        await p.reloaded()
        assert p.input_rules is second
        # a replaced file (new inode, same size) is noticed too
        replacement = tmp_path / "words.new"
        replacement.write_text("alpha\ncharl\n", encoding="utf-8")
        replacement.replace(words)
        clock.now += 5
        await p.pre(ask("x"), context())
        await p.reloaded()
        with pytest.raises(ContentFiltered):
            await p.pre(ask("charl"), context())
        assert await p.pre(ask("bravo"), context()) is None

    run(scenario())


def test_a_bad_file_keeps_the_previous_rules_and_is_logged_once(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    regexes = tmp_path / "re.txt"
    regexes.write_text("alpha\\d\n", encoding="utf-8")
    clock = Clock()
    p = make(str(tmp_path), clock, reload_interval=1, input={"regex_files": ["re.txt"]})

    async def tick() -> None:
        clock.now += 1
        await p.pre(ask("x"), context())
        await p.reloaded()

    def ours() -> list[logging.LogRecord]:  # (not another test's leftover thread: an exporter retrying)
        return [r for r in caplog.records
                if r.levelno == logging.WARNING and r.name == "clawdbot.plugins.content_filter"]

    async def scenario() -> None:
        caplog.set_level(logging.WARNING, logger="clawdbot.plugins.content_filter")
        regexes.write_text("# new\nbravo[\n", encoding="utf-8")
        await tick()
        warnings = [r.getMessage() for r in ours()]
        assert len(warnings) == 1 and "re.txt:2: bad regex" in warnings[0]
        with pytest.raises(ContentFiltered):
            await p.pre(ask("alpha1"), context())  # the previous rules still apply
        await tick()
        await tick()
        assert len(ours()) == 1  # once
        regexes.unlink()  # a missing file: also kept, also said once
        await tick()
        await tick()
        assert len(ours()) == 2
        regexes.write_text("bravo\\d\n", encoding="utf-8")
        await tick()
        with pytest.raises(ContentFiltered, match=r"re\.txt:1"):
            await p.pre(ask("bravo2"), context())
        assert await p.pre(ask("alpha1"), context()) is None

    run(scenario())


def test_reload_interval_zero_never_reloads(tmp_path: Path) -> None:
    (tmp_path / "w.txt").write_text("alpha\n", encoding="utf-8")
    clock = Clock()
    p = make(str(tmp_path), clock, reload_interval=0, input={"keyword_files": ["w.txt"]})
    (tmp_path / "w.txt").write_text("bravo\n", encoding="utf-8")
    clock.now += 10**6
    run(p.pre(ask("x"), context()))
    run(p.reloaded())
    passes(p, ask("bravo"))


# -- output: whole answers --------------------------------------------------------------------------

def test_post_blocks_or_redacts_a_whole_answer() -> None:
    block = make(output={"keywords": ["classified"]})
    ctx = context()
    with pytest.raises(ContentFiltered) as info:
        run(block.post(answer("This is CLASSIFIED."), ctx))
    assert "rule set 'output'" in info.value.message and "answer" in info.value.message
    assert ctx.plugin_notes == ["content_filter: blocked output by rule set output rule keyword 1"]
    with pytest.raises(ContentFiltered):
        run(block.post(answer("fine", reasoning="thinking about classified things"), context()))
    assert run(block.post(answer("all fine"), context())) is None

    redact = make(action="redact", output={"keywords": ["classified", "机密"]})
    ctx = context()
    got = run(redact.post(answer("classified: 机密文件", reasoning="classified"), ctx))
    assert got is not None and got.message.content == "***: ***文件" and got.message.reasoning == "***"
    assert ctx.plugin_notes == ["content_filter: redacted 3 output matches"]
    assert run(redact.post(answer("nothing"), context())) is None
    # input-only configurations leave answers alone
    assert run(make(input={"keywords": ["classified"]}).post(answer("classified"), context())) is None


# -- output: streams ----------------------------------------------------------------------------------

def chunked(text: str, rng: random.Random, cut: int, most: int = 7) -> list[str]:
    """`text` in chunks of random sizes (1..most), with a chunk boundary at `cut`."""
    bounds = {0, cut, len(text)}
    i = 0
    while i < len(text):
        i += rng.randint(1, most)
        bounds.add(min(i, len(text)))
    b = sorted(bounds)
    return [text[x:y] for x, y in itertools.pairwise(b) if y > x]


def held_by(p: ContentFilter) -> Any:
    return lambda ctx: len(p.state(ctx).content.held) if p.state(ctx) is not None else 0


KEYWORDS = ["secret plan", "机密文件", "bad"]
TEXTS = [
    "Here is the Secret Plan: none.",
    "这是机密文件，不要外传。",
    "badminton is not bad at all",
    "我觉得bad，真的bad吗",
    "secret planning is fine, but the secret plan is not",
]


@pytest.mark.parametrize("text", TEXTS)
def test_stream_redaction_equals_the_whole_text_at_every_split(text: str) -> None:
    p = make(action="redact", output={"keywords": KEYWORDS})
    rules = p.output_rules
    assert rules is not None
    want, n = rules.redact(text)
    assert n >= 1
    rng = random.Random(20260112)
    for cut in range(1, len(text)):
        for finish in (True, False):
            ctx = context()
            got = stream(p, chunked(text, rng, cut), ctx, finish=finish, held=held_by(p))
            assert got.error is None
            assert got.content == want, (cut, got.content)
            assert got.most_held <= rules.hold  # never more than the longest keyword (+1) needs
            assert ctx.plugin_notes == [f"content_filter: redacted {n} output match{'es' if n > 1 else ''}"]
    assert rules.hold == len("secret plan")  # 11 characters + 1 for the word boundary, minus 1


@pytest.mark.parametrize("keyword", KEYWORDS)
def test_stream_block_catches_a_keyword_split_at_every_position(keyword: str) -> None:
    p = make(output={"keywords": KEYWORDS})
    prefix, suffix = "Some harmless words 一些文字 ", " and more after it."
    text = prefix + keyword.upper() + suffix
    rng = random.Random(7)
    for split in range(1, len(keyword)):
        for _ in range(5):  # random chunk sizes around the split
            ctx = context()
            got = stream(p, chunked(text, rng, len(prefix) + split), ctx, held=held_by(p))
            assert isinstance(got.error, ContentFiltered) and got.error.code == "content_filtered"
            assert keyword.lower() not in got.content.lower()
            assert prefix.startswith(got.content)  # only text before the match was released
            assert got.most_held <= p.output_rules.hold  # type: ignore[union-attr]
            assert p.on_stream_end(ctx) is None  # what was held is never released
            assert ctx.plugin_notes is not None and ctx.plugin_notes[-1].startswith(
                "content_filter: blocked output by rule set output rule keyword")


def test_stream_without_a_match_releases_everything_in_order() -> None:
    p = make(output={"keywords": KEYWORDS, "regex": [r"\b\d{3}-\d{4}\b"]}, max_match_chars=32)
    text = "Nothing to see here, 这里没有什么, call 12-345 maybe. " * 5
    rng = random.Random(3)
    got = stream(p, chunked(text, rng, 10), held=held_by(p))
    assert got.error is None and got.content == text
    assert got.most_held <= 31  # a regex: the declared window
    # ended without a finish chunk: on_stream_end gives back what was held
    ctx = context()
    mid = stream(p, ["abc ", "def"], ctx, finish=False)
    assert mid.content == "abc def" and mid.chunks[-1].content


def test_stream_regex_window_and_bounded_regex_reach() -> None:
    unbounded = make(action="redact", max_match_chars=20, output={"regex": [r"\bcode-\d+"]})
    assert unbounded.output_rules is not None and unbounded.output_rules.hold == 19
    bounded = make(action="redact", output={"regex": [r"\bid-\d{6}\b"]})
    assert bounded.output_rules is not None and bounded.output_rules.hold == 9  # 9 characters + 1 for the \\b, - 1
    text = "see id-123456 and id-654321, not id-1234567 " * 3
    want, n = bounded.output_rules.redact(text)
    assert n == 6
    rng = random.Random(11)
    for cut in range(1, 40):
        got = stream(bounded, chunked(text, rng, cut), held=held_by(bounded))
        assert got.content == want and got.most_held <= 9


def test_stream_chunk_shapes_role_finish_usage_reasoning_and_tool_calls() -> None:
    p = make(action="redact", output={"keywords": ["xyzzy"]})
    ctx = context()
    role = ChatChunk(role="assistant", content="")
    assert p.on_chunk(role, ctx) is role  # nothing to scan: passed as it is
    # reasoning is buffered on its own: only a tail that could still become "xyzzy" waits, and
    # what waits is released when the content starts
    a = p.on_chunk(ChatChunk(reasoning="I"), ctx)
    assert a is not None and a.reasoning == "I"  # cannot start the keyword: passed at once
    a = p.on_chunk(ChatChunk(reasoning=" think xyz"), ctx)
    assert a is not None and a.reasoning == " think " and a.content is None
    assert p.on_chunk(ChatChunk(reasoning="zy"), ctx) is None  # "xyzzy": a word character may follow
    c = p.on_chunk(ChatChunk(content="Hello xy"), ctx)
    assert c is not None and c.reasoning == "***" and c.content == "Hello "
    # tool calls end the content: what is held goes out with them
    calls = [ToolCallDelta(index=0, name="f", arguments="{}")]
    d = p.on_chunk(ChatChunk(content="zzy!", tool_calls=calls), ctx)
    assert d is not None and d.content == "***!" and d.tool_calls == calls
    e = p.on_chunk(ChatChunk(finish_reason="tool_calls"), ctx)
    assert e is not None and e.finish_reason == "tool_calls" and e.content is None
    assert p.on_stream_end(ctx) is None
    assert ctx.plugin_notes == ["content_filter: redacted 2 output matches"]


def test_held_text_goes_out_with_the_finish_chunk() -> None:
    p = make(output={"keywords": ["longkeyword"]})
    ctx = context()
    first = p.on_chunk(ChatChunk(content="a long"), ctx)  # "long" may still become "longkeyword"
    assert first is not None and first.content == "a "
    last = p.on_chunk(ChatChunk(finish_reason="stop"), ctx)
    assert last is not None and last.content == "long" and last.finish_reason == "stop"
    assert p.on_stream_end(ctx) is None


def test_input_only_filter_passes_chunks_untouched() -> None:
    p = make(input={"keywords": ["x"]})
    chunk = ChatChunk(content="x marks the spot")
    assert p.on_chunk(chunk, context()) is chunk


# -- the compiled rules ---------------------------------------------------------------------------

def test_one_alternation_for_keywords_and_regexes() -> None:
    rules = RuleSet("s", "redact", [Rule(f"k{i}", w) for i, w in enumerate(["ab", "abc", "c++", "坏"])],
                    [Rule("r1", r"\bx\d"), Rule("r2", r"\by\d|z\d"), Rule("r3", r"(?x) q \d # spaced")])
    text = "abc ab c++ 坏 x1 y2 z3 q4 Abc"
    assert [h.rule.id for h in rules.hits(text)] == ["k1", "k0", "k2", "k3", "r1", "r2", "r2", "r3", "k1"]
    assert rules.redact(text) == ("*** *** *** *** *** *** *** *** ***", 9)
    assert rules.first("nothing") is None
    assert rules.hold == 3  # "abc" + 1 for its word boundary, - 1 (the regexes need less)


def test_stream_buffer_bounds_what_it_holds() -> None:
    rules = RuleSet("s", "block", [Rule("k", "needle")], [])
    buf = StreamBuffer(rules)
    released = ""
    for ch in "a haystack without it, " * 3:
        out, hit = buf.feed(ch)
        assert hit is None and len(buf.held) <= rules.hold
        released += out
    out, hit = buf.feed("", final=True)
    assert released + out == "a haystack without it, " * 3
    buf = StreamBuffer(rules)
    assert buf.feed("a nee")[1] is None
    out, hit = buf.feed("dle ")  # decided once the character after it is known
    assert hit is not None and hit.rule.id == "k" and "nee" not in out
