"""The built-in `pii` plugin: finds personal and secret data in what a client sends a model and
masks it (reversible placeholders, restored in the answer), redacts it (one-way), or refuses the
request. docs/plugin-pii.md has the settings and the measured precision and recall.

    plugins:
      - name: pii
        with: {mode: mask, types: [EMAIL, PHONE, CN_ID, CARD, IBAN, IP, SECRET]}

Detection is pii_detect.py and pii_secrets.py (candidates) with pii_checks.py (validators),
placeholders and restoring pii_mask.py, the optional NER path pii_presidio.py. This module walks
the request and the answer: message text (strings and text parts), assistant reasoning, tool-call
arguments, tool results. JSON (tool-call arguments, tool results) is decoded and its strings
masked one by one, so that `\\u`-escaped text is seen as the characters it stands for.
Values are never logged: notes carry types and counts."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from clawdbot.core.context import RequestContext
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, Message, Part, TextPart, ToolCall, ToolCallDelta
from clawdbot.plugins.base import Host, Needs, Plugin, PluginConfigError, doc
from clawdbot.plugins.pii_detect import TYPES, Span, detect, resolve
from clawdbot.plugins.pii_mask import Masker, PiiBlocked, StreamRestorer
from clawdbot.plugins.pii_presidio import ENTITIES, PresidioNer
from clawdbot.plugins.registry import SettingsError

ROLES = ("system", "developer", "user", "assistant", "tool")
OFFLOAD_CHARS = 32_768  # more text than this is scanned in a worker thread
NER_TYPES = tuple(ENTITIES.values())


class PiiSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # (the descriptions are the control panel's help text: msgspec.json.schema carries them)
    mode: Annotated[Literal["mask", "redact", "block"], doc(
        "mask: placeholders upstream, the values put back into the answer; redact: placeholders "
        "only; block: refuse the request (400)")] = "mask"
    # Which types to look for (EMAIL, PHONE, CN_ID, CARD, IBAN, IP, SECRET; PERSON and LOCATION
    # with presidio). None: all of them.
    types: Annotated[list[str] | None, doc(
        "The types to look for: EMAIL, PHONE, CN_ID, CARD, IBAN, IP, SECRET (PERSON and LOCATION "
        "with presidio). Empty: all of them.")] = None
    # Whose messages: the client's (user, system/developer), tool results, and the assistant
    # turns the client sends back as history (they hold the values the answer was restored with).
    apply_to: Annotated[list[str], doc(
        "Whose messages are scanned: system, developer, user, assistant (history), tool.")] = msgspec.field(
        default_factory=lambda: list(ROLES))
    # mask: put the values back into the answer. False: the client sees the placeholders too.
    restore: Annotated[bool, doc("mask: put the values back into the answer (off: the client sees "
                                  "the placeholders too).")] = True
    presidio: Annotated[bool, doc("Also find names and places with Microsoft Presidio (the pii-ner extra).")] = False
    presidio_model: Annotated[str, doc("The installed spaCy pipeline package Presidio uses.")] = "en_core_web_sm"
    presidio_score: Annotated[float, doc("Presidio's lowest score that counts as a find (0..1).")] = 0.5


class _State:
    """Per request: the mapping, and one stream restorer per text channel (content, reasoning,
    each tool call's arguments by index)."""

    __slots__ = ("masker", "restorers")

    def __init__(self, masker: Masker) -> None:
        self.masker = masker
        self.restorers: dict[str | int, StreamRestorer] = {}

    def restorer(self, key: str | int) -> StreamRestorer:
        r = self.restorers.get(key)
        if r is None:
            r = self.restorers[key] = StreamRestorer(self.masker, json_string=isinstance(key, int))
        return r


class PiiPlugin(Plugin):
    name = "pii"
    needs: ClassVar[Needs] = "response"
    guard = True
    timeout = 5.0  # the NER path takes tens of milliseconds per message
    Settings = PiiSettings

    def __init__(self, settings: Any, host: Host) -> None:
        if not isinstance(settings, PiiSettings):
            try:
                settings = msgspec.convert(settings or {}, PiiSettings)
            except msgspec.ValidationError as e:
                raise PluginConfigError(f"pii: {e}") from None
        super().__init__(settings, host)
        s: PiiSettings = settings
        known = TYPES + NER_TYPES if s.presidio else TYPES
        wanted = [t.upper() for t in s.types] if s.types is not None else list(known)
        bad = [t for t in wanted if t not in known]
        if bad:
            hint = "" if s.presidio else " (PERSON and LOCATION need presidio: true)"
            # SettingsError: the config error points at `with: types:` (file:line).
            raise SettingsError(f"pii: types: unknown {', '.join(bad)}; known: {', '.join(known)}{hint}",
                                ("types",))
        bad = [r for r in s.apply_to if r not in ROLES]
        if bad:
            raise SettingsError(f"pii: apply_to: unknown role {', '.join(bad)}; roles: {', '.join(ROLES)}",
                                ("apply_to",))
        self._types = tuple(t for t in TYPES if t in wanted)
        self._roles = frozenset(s.apply_to)
        self._mode = s.mode
        self._restore = s.mode == "mask" and s.restore
        # What the pipeline must decode for this instance: the answer only when it is restored
        # (the contract declares `needs` on the class; an instance's settings decide it here).
        self.needs = "response" if self._restore else "request"  # type: ignore[misc]
        ner_types = [t for t in wanted if t in NER_TYPES]
        self._ner = PresidioNer(s.presidio_model, ner_types, s.presidio_score) if s.presidio else None

    async def start(self) -> None:
        if self._ner is not None:
            await asyncio.to_thread(self._ner.load)

    # -- request ----------------------------------------------------------------------------

    async def pre(self, request: ChatRequest, ctx: RequestContext) -> ChatRequest | None:
        masker = Masker()
        found: dict[str, int] = {}
        # The regex path takes well under a millisecond for a chat message, but grows with the
        # text: a long document (or the NER path, tens of ms) runs in a worker thread so that it
        # does not hold up every other request on the event loop.
        if self._ner is not None or _text_size(request) > OFFLOAD_CHARS:
            out = await asyncio.to_thread(self._apply, request, masker, found)
        else:
            out = self._apply(request, masker, found)
        if self._mode == "block":
            if found:
                self.note(ctx, "blocked: " + ", ".join(sorted(found)))
                raise PiiBlocked(found)
            return None
        if out is None:
            return None
        self.note(ctx, ("masked " if self._mode == "mask" else "redacted ") + masker.summary())
        if self._restore:
            self.set_state(ctx, _State(masker))
        return out

    def _scan(self, text: str) -> list[Span]:
        spans = detect(text, self._types)
        if self._ner is not None:
            extra = self._ner.spans(text)
            if extra:
                spans = resolve([*spans, *extra])
        return spans

    def _text(self, text: str, masker: Masker, found: dict[str, int]) -> str:
        spans = self._scan(text)
        if not spans:
            return text
        for sp in spans:
            found[sp.type] = found.get(sp.type, 0) + 1
        if self._mode == "mask":
            return masker.mask(text, spans)
        if self._mode == "redact":
            return masker.redact(text, spans)
        return text  # block: only counted

    def _json(self, raw: str, masker: Masker, found: dict[str, int]) -> str:
        """JSON text with its string (and integer) values masked; plain text when it is not JSON."""
        try:
            data = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return self._text(raw, masker, found)
        changed = False

        def walk(v: Any) -> Any:
            nonlocal changed
            if isinstance(v, str):
                nv = self._text(v, masker, found)
            elif isinstance(v, int) and not isinstance(v, bool) and v >= 10**7:
                # {"phone": 13812345678}: a number that is wholly a value becomes its placeholder
                # (a string); the tool that gets it back restored gets the digits as a string.
                s = str(v)
                nv = self._text(s, masker, found)
                return v if nv == s else nv
            elif isinstance(v, list):
                return [walk(x) for x in v]
            elif isinstance(v, dict):
                return {k: walk(x) for k, x in v.items()}
            else:
                return v
            if nv != v:
                changed = True
            return nv

        new = walk(data)
        return msgspec.json.encode(new).decode() if changed else raw

    def _message(self, m: Message, masker: Masker, found: dict[str, int]) -> Message:
        content = m.content
        if isinstance(content, str):
            looks_json = m.role == "tool" and content[:1] in ("{", "[")
            content = self._json(content, masker, found) if looks_json else self._text(content, masker, found)
        elif content is not None:
            parts: list[Part] = [TextPart(self._text(p.text, masker, found)) if isinstance(p, TextPart) else p
                                 for p in content]
            content = parts
        reasoning = self._text(m.reasoning, masker, found) if m.reasoning else m.reasoning
        calls = m.tool_calls
        if calls:
            calls = [msgspec.structs.replace(c, arguments=self._json(c.arguments, masker, found))
                     if c.arguments else c for c in calls]
        if content is m.content and reasoning is m.reasoning and calls is m.tool_calls:
            return m
        return msgspec.structs.replace(m, content=content, reasoning=reasoning, tool_calls=calls)

    def _apply(self, request: ChatRequest, masker: Masker, found: dict[str, int]) -> ChatRequest | None:
        """The request with its messages masked (or redacted), None if nothing was found."""
        if self._mode == "mask":
            for m in request.messages:  # the client's own placeholder-shaped text is reserved first
                masker.reserve(m.text())
                for c in m.tool_calls or ():
                    masker.reserve(c.arguments)
        messages = [self._message(m, masker, found) if m.role in self._roles else m for m in request.messages]
        if not found or self._mode == "block":
            return None
        return msgspec.structs.replace(request, messages=messages)

    # -- answer -----------------------------------------------------------------------------

    def _masker(self, ctx: RequestContext) -> _State | None:
        st = self.state(ctx) if self._restore else None
        return st if isinstance(st, _State) and st.masker.originals else None

    def reads_answer(self, ctx: RequestContext) -> bool:
        return self._masker(ctx) is not None  # only an answer to a masked request has anything to restore

    async def post(self, response: ChatResponse, ctx: RequestContext) -> ChatResponse | None:
        st = self._masker(ctx)
        if st is None:
            return None
        mk = st.masker
        m = response.message
        content = m.content
        if isinstance(content, str):
            content = mk.restore(content)
        elif content is not None:
            content = [TextPart(mk.restore(p.text)) if isinstance(p, TextPart) else p for p in content]
        reasoning = mk.restore(m.reasoning) if m.reasoning else m.reasoning
        calls: list[ToolCall] | None = m.tool_calls
        if m.tool_calls:
            calls = [msgspec.structs.replace(c, arguments=mk.restore(c.arguments, json_string=True))
                     for c in m.tool_calls]
        if content == m.content and reasoning == m.reasoning and calls == m.tool_calls:
            return None  # no placeholder of this request in the answer
        msg = msgspec.structs.replace(m, content=content, reasoning=reasoning, tool_calls=calls)
        return msgspec.structs.replace(response, message=msg)

    def on_chunk(self, chunk: ChatChunk, ctx: RequestContext) -> ChatChunk | None:
        st = self._masker(ctx)
        if st is None:
            return chunk
        content = st.restorer("content").feed(chunk.content) if chunk.content else chunk.content
        reasoning = st.restorer("reasoning").feed(chunk.reasoning) if chunk.reasoning else chunk.reasoning
        calls = chunk.tool_calls
        if calls:
            calls = [msgspec.structs.replace(d, arguments=st.restorer(d.index).feed(d.arguments))
                     if d.arguments else d for d in calls]
        if chunk.finish_reason is not None:
            # The answer ends here: what is held goes out before the finish reason, not after it.
            content, reasoning, calls = self._flush(st, content, reasoning, calls)
        if content is chunk.content and reasoning is chunk.reasoning and calls is chunk.tool_calls:
            return chunk
        out = msgspec.structs.replace(chunk, content=content or None, reasoning=reasoning or None,
                                      tool_calls=calls)
        if (out.content is None and out.reasoning is None and not _has_args(out.tool_calls)
                and out.finish_reason is None and out.usage is None and out.role is None
                and not _has_ids(out.tool_calls)):
            return None  # all of it is held back for now
        return out

    def on_stream_end(self, ctx: RequestContext) -> ChatChunk | None:
        st = self._masker(ctx)
        if st is None:
            return None
        content, reasoning, calls = self._flush(st, None, None, None)
        if not content and not reasoning and not calls:
            return None
        return ChatChunk(content=content or None, reasoning=reasoning or None, tool_calls=calls)

    @staticmethod
    def _flush(st: _State, content: str | None, reasoning: str | None,
               calls: list[ToolCallDelta] | None) -> tuple[str | None, str | None, list[ToolCallDelta] | None]:
        for key, r in st.restorers.items():
            held = r.flush()
            if not held:
                continue
            if key == "content":
                content = (content or "") + held
            elif key == "reasoning":
                reasoning = (reasoning or "") + held
            elif isinstance(key, int):
                calls = list(calls or [])
                for i, d in enumerate(calls):
                    if d.index == key:
                        calls[i] = msgspec.structs.replace(d, arguments=(d.arguments or "") + held)
                        break
                else:
                    calls.append(ToolCallDelta(index=key, arguments=held))
        return content, reasoning, calls


def _text_size(request: ChatRequest) -> int:
    n = 0
    for m in request.messages:
        c = m.content
        if isinstance(c, str):
            n += len(c)
        elif c is not None:
            n += sum(len(p.text) for p in c if isinstance(p, TextPart))
        n += sum(len(tc.arguments) for tc in m.tool_calls or ())
    return n


def _has_args(calls: list[ToolCallDelta] | None) -> bool:
    return bool(calls) and any(d.arguments for d in calls or ())


def _has_ids(calls: list[ToolCallDelta] | None) -> bool:
    return bool(calls) and any(d.id or d.name for d in calls or ())
