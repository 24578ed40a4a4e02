"""The checker: every collected text searched for every secret the session used.

A secret is found in any of the forms a leak takes: the value itself (also after `Bearer `), its
URL-encoded forms, its JSON-escaped form, and any prefix of 12 or more characters (a key cut short is
still most of a key). What is not a leak: the documented masked forms, which keep at most 10 leading
characters (a virtual key's hint `sk-cb-AbCd...wXyZ`, docs/tenancy.md) or none (`********` in
`config show`, `***` in the audit log). So the 12-character bound is what tells a hint from a leak."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

PREFIX_CHARS = 12  # a shared prefix this long or longer is a partial leak
MIN_SECRET_CHARS = 8  # shorter values ("x", "unused") cannot be searched for without noise


@dataclass(frozen=True)
class Secret:
    value: str
    kind: str  # "master key", "virtual key", "upstream key", "key secret", "password", "presented credential"
    origin: str  # where the session learned it


@dataclass(frozen=True)
class Source:
    name: str  # what it is: "log of gateway ...", "HTTP response POST /v1/... 401", "metrics of ..."
    text: str
    test: str = ""  # the test that produced it
    binary: bool = False  # raw bytes (decoded latin-1): report offsets, not lines


@dataclass(frozen=True)
class Leak:
    source: str
    test: str
    where: str  # "line 12" or "offset 4096"
    form: str  # "whole", "Bearer header", "URL-encoded", "JSON-escaped", "prefix of 14 chars"
    secret: Secret
    excerpt: str  # the line, with the matching characters replaced: the report must not leak either

    def describe(self) -> str:
        test = f" (test {self.test})" if self.test else ""
        return (f"{self.source}{test}, {self.where}: {self.secret.kind} ({self.secret.origin}) as {self.form}\n"
                f"    {self.excerpt}")


def masked(value: str) -> str:
    """How the report names a secret: its first 4 and last 2 characters only."""
    return f"{value[:4]}...{value[-2:]}" if len(value) > 8 else "***"


def variants(value: str) -> list[tuple[str, str]]:
    """The encodings a secret may appear in: (form, text), the value itself first."""
    out: list[tuple[str, str]] = []
    for form, text in (("whole", value), ("URL-encoded", quote(value, safe="")), ("URL-encoded", quote_plus(value)),
                       ("JSON-escaped", json.dumps(value)[1:-1])):
        if all(text != t for _, t in out):
            out.append((form, text))
    return out


def _trie_pattern(needles: Iterable[str]) -> str:
    """One regex for many literals, shaped as a trie so the engine compares each position once per
    character of the longest match rather than once per needle."""
    trie: dict[str, Any] = {}
    for n in needles:
        node = trie
        for ch in n:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        ends = "" in node
        branches = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if ends else body

    return emit(trie)


class Checker:
    def __init__(self, secrets: Iterable[Secret]) -> None:
        self.secrets: dict[str, Secret] = {}
        for s in secrets:
            if len(s.value) >= MIN_SECRET_CHARS and s.value not in self.secrets:
                self.secrets[s.value] = s
        # the first PREFIX_CHARS characters of each form -> (secret, form, the whole form)
        self._starts: dict[str, list[tuple[Secret, str, str]]] = {}
        for s in self.secrets.values():
            for form, text in variants(s.value):
                self._starts.setdefault(text[:PREFIX_CHARS], []).append((s, form, text))
        # a lookahead, so that occurrences which overlap are each found
        self._pattern = re.compile(f"(?=({_trie_pattern(self._starts)}))") if self._starts else None

    def scan(self, source: Source) -> list[Leak]:
        if self._pattern is None:
            return []
        text = source.text
        leaks: list[Leak] = []
        for m in self._pattern.finditer(text):
            at, longest = m.start(), m.group(1)
            # the trie gives the longest needle here; a shorter secret may start here too
            starts = [self._starts[longest[:k]] for k in range(len(longest), MIN_SECRET_CHARS - 1, -1)
                      if longest[:k] in self._starts]
            best: dict[str, tuple[bool, int, Secret, str]] = {}  # per secret: its most complete form here
            for secret, form, full in (c for group in starts for c in group):
                n = _common(text, at, full)
                if n < len(full) and n < PREFIX_CHARS:
                    continue
                rank = (n == len(full), n)
                if secret.value not in best or rank > best[secret.value][:2]:
                    best[secret.value] = (*rank, secret, _form(text, at, form, full, n))
            leaks += [self._leak(source, at, how, secret) for _, _, secret, how in best.values()]
        return leaks

    def redact(self, text: str) -> str:
        """`text` with everything that starts like a secret replaced by its masked name."""
        if self._pattern is None:
            return text
        return re.sub(self._pattern.pattern[3:-1] + r"[^\s\"',;&]*", lambda m: f"<{masked(m.group())}>", text)

    def _leak(self, source: Source, at: int, how: str, secret: Secret) -> Leak:
        text = source.text
        start = text.rfind("\n", 0, at) + 1
        end = text.find("\n", at)
        length = (end if end >= 0 else len(text)) - start
        col = at - start
        lo, hi = max(0, col - 160), min(length, col + 200)
        excerpt = ("..." if lo else "") + self.redact(text[start + lo:start + hi]) + ("..." if length > hi else "")
        where = f"offset {at}" if source.binary else f"line {text.count(chr(10), 0, at) + 1}"
        return Leak(source.name, source.test, where, how, secret, excerpt.replace("\r", "\\r"))

    def scan_all(self, sources: Iterable[Source]) -> Iterator[Leak]:
        for source in sources:
            yield from self.scan(source)


def _common(text: str, at: int, full: str) -> int:
    """How many characters of `full` the text holds from `at` on."""
    n = 0
    while n < len(full) and at + n < len(text) and text[at + n] == full[n]:
        n += 1
    return n


def _form(text: str, at: int, form: str, full: str, n: int) -> str:
    if n < len(full):
        return f"prefix of {n} of its {len(full)} chars" + ("" if form == "whole" else f" ({form})")
    if form == "whole" and text[max(0, at - 7):at].lower() == "bearer ":
        return "Bearer header"
    return form


def report(leaks: list[Leak], limit: int = 50) -> str:
    lines = [f"{len(leaks)} secret leak(s) found in what the test session collected:"]
    lines += [leak.describe() for leak in leaks[:limit]]
    if len(leaks) > limit:
        lines.append(f"... and {len(leaks) - limit} more")
    return "\n".join(lines)
