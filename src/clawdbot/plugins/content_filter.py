"""The `content_filter` plugin: keyword and regex rules on the request's messages (pre), on a whole
answer (post) and on a streamed answer as it goes (on_chunk), with `block` or `redact`, plus an
opt-in prompt-injection rule set. Rules and their compilation: plugins/filter_rules.py; settings,
semantics and costs: docs/plugin-content-filter.md.

    - name: content_filter
      with:
        action: block                     # or redact (replace each match with ***)
        input:  {keywords: [...], keyword_files: [words.txt], regex: [...], regex_files: [...]}
        output: {keyword_files: [words.txt], action: redact}
        injection: true
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from clawdbot.core.context import RequestContext
from clawdbot.core.errors import BadRequest
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, Message, Part, TextPart
from clawdbot.plugins.base import Answer, Host, Needs, Plugin, PluginConfigError, doc
from clawdbot.plugins.filter_rules import (
    Action,
    Hit,
    InjectionScanner,
    RuleError,
    RuleSet,
    RuleSource,
    RuleSpec,
    StreamBuffer,
)

log = logging.getLogger("clawdbot.plugins.content_filter")


class ContentFiltered(BadRequest):
    """A request (or an answer) matched a block rule. 400 by default (`status: 403` in the
    settings makes it 403); the message names the rule set and the rule, never the matched text."""

    code = "content_filtered"


class RuleSetSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One set of rules: keywords and regular expressions, inline or from files."""

    name: Annotated[str | None, doc("Its name in notes and errors (default: input / output).")] = None
    action: Annotated[Literal["block", "redact"] | None, doc("Default: the plugin's action.")] = None
    keywords: Annotated[list[str], doc("Words or phrases that match (case-insensitive).")] = []
    keyword_files: Annotated[list[str], doc("Files of keywords, one a line (reloaded when they change).")] = []
    regex: Annotated[list[str], doc("Regular expressions (Python syntax).")] = []
    regex_files: Annotated[list[str], doc("Files of regular expressions, one a line.")] = []


class ContentFilterSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    input: Annotated[RuleSetSettings | None, doc("The rules the request's messages are checked against.")] = None
    output: Annotated[RuleSetSettings | None, doc("The rules the answer is checked against (streams too).")] = None
    action: Annotated[Literal["block", "redact"], doc(
        "block: refuse the request (or end the answer); redact: replace what matched.")] = "block"
    status: Annotated[Literal[400, 403], doc("The HTTP status of a blocked request.")] = 400
    # Latin (any spaced script) keywords match whole words only; CJK keywords match anywhere.
    whole_words: Annotated[bool, doc("Latin keywords match whole words only (CJK ones match anywhere).")] = True
    # The longest text a regex match (look-arounds included) may span: a stream holds back this
    # many characters (minus one) when a rule set has regexes.
    max_match_chars: Annotated[int, msgspec.Meta(ge=1, le=65536), doc(
        "The longest text a regex match may span: a stream holds back this many characters.")] = 256
    # Seconds between looks at the rule files (0: never reloaded).
    reload_interval: Annotated[float, msgspec.Meta(ge=0), doc(
        "Seconds between looks at the rule files (0: never reloaded).")] = 5.0
    injection: Annotated[bool, doc("Also score messages for prompt injection.")] = False
    injection_threshold: Annotated[float, msgspec.Meta(gt=0), doc(
        "The score from which a message counts as an injection.")] = 1.0
    injection_action: Annotated[Literal["block", "flag"], doc(
        "block: refuse the request; flag: only note it.")] = "block"
    injection_roles: Annotated[tuple[str, ...], doc("Whose messages are scored for injection.")] = ("user", "tool")


def _texts(message: Message) -> list[str]:
    content = message.content
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    return [p.text for p in content if isinstance(p, TextPart)]


def _redact_message(message: Message, rules: RuleSet) -> tuple[Message, int]:
    content = message.content
    if isinstance(content, str):
        text, n = rules.redact(content)
        return (msgspec.structs.replace(message, content=text), n) if n else (message, 0)
    if not content:
        return message, 0
    parts: list[Part] = []
    total = 0
    for part in content:
        if isinstance(part, TextPart):
            text, n = rules.redact(part.text)
            if n:
                part = TextPart(text)
                total += n
        parts.append(part)
    return (msgspec.structs.replace(message, content=parts), total) if total else (message, 0)


class _Stream:
    """Per-request state of a streamed answer: the rules it started with and two buffers."""

    __slots__ = ("blocked", "content", "noted", "reasoning")

    def __init__(self, rules: RuleSet) -> None:
        self.content = StreamBuffer(rules)
        self.reasoning = StreamBuffer(rules)
        self.blocked = False
        self.noted = False


class ContentFilter(Plugin):
    name = "content_filter"
    needs: ClassVar[Needs] = "response"  # per instance: "request" when there are no output rules
    guard = True
    Settings = ContentFilterSettings

    def __init__(self, settings: ContentFilterSettings, host: Host, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(settings, host)
        self.settings: ContentFilterSettings = settings
        self._input = self._source(settings.input, "input", host, clock)
        self._output = self._source(settings.output, "output", host, clock)
        self._sources = [s for s in (self._input, self._output) if s is not None]
        self._injection = InjectionScanner() if settings.injection else None
        if not self._sources and self._injection is None:
            raise PluginConfigError("content_filter: nothing to do: set `input`, `output` or `injection: true`")
        # What the pipeline must decode for this configuration (instance value of the ClassVar).
        self.needs = "response" if self._output is not None else "request"  # type: ignore[misc]
        self._reloads: set[asyncio.Future[bool]] = set()

    def _source(self, rs: RuleSetSettings | None, default_name: str, host: Host,
                clock: Callable[[], float]) -> RuleSource | None:
        if rs is None:
            return None
        s = self.settings
        action: Action = rs.action or s.action
        spec = RuleSpec(rs.name or default_name, action, tuple(rs.keywords), tuple(rs.keyword_files),
                        tuple(rs.regex), tuple(rs.regex_files), s.whole_words, s.max_match_chars)
        try:
            return RuleSource(spec, host.config_dir, interval=s.reload_interval, clock=clock)
        except RuleError as e:
            raise PluginConfigError(f"content_filter: {default_name}: {e}") from None

    # -- reload: checked on the request path (a clock comparison), done in a worker thread ------

    def _refresh(self) -> None:
        for source in self._sources:
            if source.due():
                source.reloading = True
                future = asyncio.get_running_loop().run_in_executor(None, source.reload)
                self._reloads.add(future)
                future.add_done_callback(self._reload_done)

    def _reload_done(self, future: asyncio.Future[bool]) -> None:
        self._reloads.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("content_filter: reload failed", exc_info=future.exception())

    async def reloaded(self) -> None:
        """Wait for the reloads under way (tests; close)."""
        if self._reloads:
            await asyncio.gather(*self._reloads, return_exceptions=True)

    async def close(self) -> None:
        await self.reloaded()

    @property
    def input_rules(self) -> RuleSet | None:
        return self._input.current if self._input is not None else None

    @property
    def output_rules(self) -> RuleSet | None:
        return self._output.current if self._output is not None else None

    # -- refusals ------------------------------------------------------------------------------

    def _refuse(self, ctx: RequestContext, direction: str, rules_name: str, what: str) -> ContentFiltered:
        self.note(ctx, f"blocked {direction} by rule set {rules_name} {what}")
        subject = "request" if direction == "input" else "answer"
        err = ContentFiltered(f"The {subject} was refused by the content filter (rule set {rules_name!r}, {what}).")
        err.status = self.settings.status
        return err

    def _blocked(self, ctx: RequestContext, direction: str, rules: RuleSet, hit: Hit) -> ContentFiltered:
        return self._refuse(ctx, direction, rules.name, f"rule {hit.rule.id}")

    # -- hooks ---------------------------------------------------------------------------------

    async def pre(self, request: ChatRequest, ctx: RequestContext) -> ChatRequest | Answer | None:
        rules = self.input_rules  # read before a due reload is scheduled: this request keeps them,
        self._refresh()  # whenever the worker thread swaps in the new ones
        changed: ChatRequest | None = None
        if rules:
            if rules.action == "block":
                for message in request.messages:
                    for text in _texts(message):
                        hit = rules.first(text)
                        if hit is not None:
                            raise self._blocked(ctx, "input", rules, hit)
            else:
                messages: list[Message] = []
                total = 0
                for message in request.messages:
                    new, n = _redact_message(message, rules)
                    messages.append(new)
                    total += n
                if total:
                    changed = msgspec.structs.replace(request, messages=messages)
                    self.note(ctx, f"redacted {total} input match{'es' if total != 1 else ''}")
        if self._injection is not None:
            self._check_injection(request, ctx)
        return changed

    def _check_injection(self, request: ChatRequest, ctx: RequestContext) -> None:
        assert self._injection is not None
        roles = self.settings.injection_roles
        texts = [t for m in request.messages if m.role in roles for t in _texts(m)]
        score, ids = self._injection.score(texts)
        threshold = self.settings.injection_threshold
        if score < threshold:
            return
        what = f"score {score:g} >= {threshold:g} ({', '.join(ids)})"
        if self.settings.injection_action == "flag":
            self.note(ctx, f"flagged prompt injection, {what}")
            return
        raise self._refuse(ctx, "input", "injection", what)

    async def post(self, response: ChatResponse, ctx: RequestContext) -> ChatResponse | None:
        rules = self.output_rules  # before a due reload is scheduled, as in `pre`
        self._refresh()
        if not rules:
            return None
        message = response.message
        if rules.action == "block":
            for text in (*_texts(message), message.reasoning or ""):
                hit = rules.first(text) if text else None
                if hit is not None:
                    raise self._blocked(ctx, "output", rules, hit)
            return None
        new, total = _redact_message(message, rules)
        if message.reasoning:
            reasoning, n = rules.redact(message.reasoning)
            if n:
                new = msgspec.structs.replace(new, reasoning=reasoning)
                total += n
        if not total:
            return None
        self.note(ctx, f"redacted {total} output match{'es' if total != 1 else ''}")
        return msgspec.structs.replace(response, message=new)

    def _feed(self, st: _Stream, buf: StreamBuffer, text: str, final: bool, ctx: RequestContext) -> str:
        released, hit = buf.feed(text, final)
        if hit is not None:
            st.blocked = True
            raise self._blocked(ctx, "output", buf.rules, hit)
        return released

    def _note_redactions(self, st: _Stream, ctx: RequestContext) -> None:
        n = st.content.redacted + st.reasoning.redacted
        if n and not st.noted:
            st.noted = True
            self.note(ctx, f"redacted {n} output match{'es' if n != 1 else ''}")

    def on_chunk(self, chunk: ChatChunk, ctx: RequestContext) -> ChatChunk | None:
        source = self._output
        if source is None:
            return chunk
        st: _Stream | None = self.state(ctx)
        if st is None:
            if not chunk.content and not chunk.reasoning:
                return chunk
            st = _Stream(source.current)
            self.set_state(ctx, st)
        if st.blocked:
            return None
        done = chunk.finish_reason is not None
        changes: dict[str, Any] = {}
        # reasoning is over when the content starts; the content is over at tool calls or the finish
        if chunk.reasoning or (st.reasoning.held and (done or chunk.content)):
            text = self._feed(st, st.reasoning, chunk.reasoning or "", done or bool(chunk.content), ctx)
            if text != chunk.reasoning:
                changes["reasoning"] = text or None
        if chunk.content or (st.content.held and (done or chunk.tool_calls)):
            text = self._feed(st, st.content, chunk.content or "", done or bool(chunk.tool_calls), ctx)
            if text != chunk.content:
                changes["content"] = text or None
        if done:
            self._note_redactions(st, ctx)
        if not changes:
            return chunk
        out = msgspec.structs.replace(chunk, **changes)
        if (out.content is None and out.reasoning is None and out.tool_calls is None and out.finish_reason is None
                and out.usage is None and out.role is None):
            return None  # all of it held back
        return out

    def on_stream_end(self, ctx: RequestContext) -> ChatChunk | None:
        st: _Stream | None = self.state(ctx)
        if st is None or st.blocked:
            return None
        reasoning = self._feed(st, st.reasoning, "", True, ctx) if st.reasoning.held else ""
        content = self._feed(st, st.content, "", True, ctx) if st.content.held else ""
        self._note_redactions(st, ctx)
        if not reasoning and not content:
            return None
        return ChatChunk(content=content or None, reasoning=reasoning or None)
