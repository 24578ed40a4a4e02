"""What the pii plugin does with the spans it found: mask (reversible placeholders), redact (one-way)
or block (refuse the request), and the restorers that put the originals back into an answer, whole
or streamed.

A placeholder is `<TYPE_N>`: N counts per type within one request (all messages share one
`Masker`), and the same value always gets the same placeholder, so the model can still tell that
the e-mail in the third message is the one from the first. "The same value" is compared in a
canonical form (digits only for numbers, lower case for e-mail addresses), so `138 1234 5678` and
`+86 13812345678` are one phone; the answer gets back the spelling that was seen first.

Nothing here logs: originals exist only in the request's own state."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable

import msgspec

from clawdbot.core.errors import BadRequest
from clawdbot.plugins.pii_detect import Span, fold

# Every type a placeholder can carry: the regex detectors' and the optional NER ones.
PLACEHOLDER_TYPES: tuple[str, ...] = (
    "EMAIL", "PHONE", "CN_ID", "CARD", "IBAN", "IP", "SECRET", "PERSON", "LOCATION",
)
PLACEHOLDER = re.compile(r"<(?:" + "|".join(PLACEHOLDER_TYPES) + r")_[1-9][0-9]{0,5}>")


class PiiBlocked(BadRequest):
    """mode: block. The message names the types found, never the values."""

    code = "pii_detected"

    def __init__(self, types: Iterable[str]) -> None:
        names = ", ".join(sorted(set(types)))
        super().__init__(
            f"The request was refused: it contains personal or secret data ({names}). "
            "Remove it and send the request again.",
            code="pii_detected",
        )


def canonical(type_: str, text: str) -> str:
    """The form two spellings of one value share."""
    t = fold(text)
    if type_ == "EMAIL":
        return t.lower()
    if type_ == "PHONE":
        digits = "".join(c for c in t if c.isdigit())
        # +86 / 0086 before a mainland mobile number: the same subscriber as without it.
        if len(digits) in (13, 15) and digits[-11] == "1" and digits[:-11] in ("86", "0086"):
            return digits[-11:]
        return digits
    if type_ in ("CN_ID", "CARD", "IBAN"):
        return "".join(c for c in t if c.isalnum()).upper()
    if type_ == "IP":
        try:
            return str(ipaddress.ip_address(t))  # 2001:DB8:0::1 and 2001:db8::1 are one address
        except ValueError:
            return t
    return t


class Masker:
    """The per-request mapping between values and placeholders (lives in the plugin's state)."""

    __slots__ = ("_by_value", "_counts", "_escaped", "_next", "_reserved", "max_len", "originals",
                 "prefixes")

    def __init__(self) -> None:
        self.originals: dict[str, str] = {}  # placeholder -> the value as first seen
        self._by_value: dict[tuple[str, str], str] = {}  # (type, canonical) -> placeholder
        self._next: dict[str, int] = {}
        self._reserved: set[str] = set()
        self._counts: dict[str, int] = {}  # occurrences masked, by type (the note)
        self._escaped: dict[str, str] = {}
        # Every proper prefix of every placeholder handed out: what a stream restorer may hold.
        self.prefixes: set[str] = set()
        self.max_len = 0

    def reserve(self, text: str) -> None:
        """Placeholder-shaped text the client itself wrote ("<EMAIL_1>" in a template) keeps its
        meaning: no value is given that name, so restoring never rewrites the client's text."""
        if "<" in text:
            self._reserved.update(PLACEHOLDER.findall(text))

    def placeholder(self, type_: str, text: str) -> str:
        key = (type_, canonical(type_, text))
        ph = self._by_value.get(key)
        if ph is None:
            n = self._next.get(type_, 0)
            while True:
                n += 1
                ph = f"<{type_}_{n}>"
                if ph not in self._reserved:
                    break
            self._next[type_] = n
            self._by_value[key] = ph
            self.originals[ph] = text
            self.prefixes.update(ph[:k] for k in range(1, len(ph)))
            self.max_len = max(self.max_len, len(ph))
        self._counts[type_] = self._counts.get(type_, 0) + 1
        return ph

    def mask(self, text: str, spans: list[Span]) -> str:
        return self._replace(text, spans, lambda sp: self.placeholder(sp.type, sp.text))

    def redact(self, text: str, spans: list[Span]) -> str:
        return self._replace(text, spans, self._redacted)

    def _redacted(self, sp: Span) -> str:
        self._counts[sp.type] = self._counts.get(sp.type, 0) + 1
        return f"[{sp.type}]"

    @staticmethod
    def _replace(text: str, spans: list[Span], by: Callable[[Span], str]) -> str:
        if not spans:
            return text
        out: list[str] = []
        pos = 0
        for sp in spans:
            out.append(text[pos:sp.start])
            out.append(by(sp))
            pos = sp.end
        out.append(text[pos:])
        return "".join(out)

    @property
    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    def summary(self) -> str:
        """"3 items (EMAIL 1, PHONE 2)": types and counts only, never a value."""
        total = sum(self._counts.values())
        kinds = ", ".join(f"{t} {n}" for t, n in sorted(self._counts.items()))
        return f"{total} item{'s' if total != 1 else ''} ({kinds})"

    def _json_escaped(self, ph: str) -> str:
        v = self._escaped.get(ph)
        if v is None:
            v = msgspec.json.encode(self.originals[ph]).decode()[1:-1]
            self._escaped[ph] = v
        return v

    def restore(self, text: str, json_string: bool = False) -> str:
        """Placeholders of this request back to their values; others (the client's own, one the
        model made up) stay. `json_string`: the text is JSON (tool-call arguments), where a value
        lands inside a string and must be escaped (a private key's newlines, a quote)."""
        if "<" not in text or not self.originals:
            return text
        if json_string:
            return PLACEHOLDER.sub(
                lambda m: self._json_escaped(m.group()) if m.group() in self.originals else m.group(), text)
        return PLACEHOLDER.sub(lambda m: self.originals.get(m.group(), m.group()), text)


class StreamRestorer:
    """Restores placeholders in a stream of text pieces, even when one is split across pieces
    (`<PHO` + `NE_1>`). It holds back only a tail that could still become a placeholder of this
    request: the text from the last '<' on, while it is a proper prefix of one (so at most the
    longest placeholder's length less one), and releases it as soon as it cannot be."""

    __slots__ = ("_held", "_json", "_masker")

    def __init__(self, masker: Masker, json_string: bool = False) -> None:
        self._masker = masker
        self._json = json_string
        self._held = ""

    @property
    def held(self) -> str:
        return self._held

    def feed(self, text: str) -> str:
        buf = self._held + text if self._held else text
        i = buf.rfind("<")
        # A placeholder has one '<', at its start: only a tail from the last '<' can be one in
        # the making. Everything before it is final.
        if i != -1 and buf[i:] in self._masker.prefixes:
            self._held = buf[i:]
            buf = buf[:i]
        else:
            self._held = ""
        return self._masker.restore(buf, self._json)

    def flush(self) -> str:
        """The stream is over: what is held is released as it is (it never became a placeholder)."""
        held, self._held = self._held, ""
        return held
