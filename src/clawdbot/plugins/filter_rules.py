"""The content filter's rules: keyword and regex lists compiled into (at most) two patterns per rule
set, the incremental scanner for streamed text, rule files with hot reload, and the curated
prompt-injection rule set. The plugin (plugins/content_filter.py) holds the hooks;
docs/plugin-content-filter.md the semantics and the measured costs.

Matching is on `fold(text)` (str.lower(), length-preserving), so keywords are case-insensitive without
the IGNORECASE engine path (3x slower in CPython's re), and match offsets index the original text.
All keywords are one trie-shaped alternation (a shared prefix is tested once, the longest keyword
is tried first); all regexes are a second alternation (RuleSet says how it is arranged). A keyword
edge that is a letter or digit of a spaced script (Latin, Cyrillic, ...) gets a word boundary
(`whole_words`); an edge in a script written without spaces (Chinese, Japanese, Korean, Thai)
never does."""

# ruff: noqa: RUF001 (the Chinese rules name full-width punctuation on purpose)
from __future__ import annotations

import base64
import binascii
import importlib
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger("clawdbot.plugins.content_filter")

Action = Literal["block", "redact"]
REDACTED = "***"
MAX_KEYWORD_CHARS = 256

# Scripts written without spaces between words: Thai, Lao, Myanmar, Khmer, CJK radicals, kana,
# bopomofo, Han (with extensions), Hangul, CJK compatibility ideographs.
_UNSPACED = ("\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u2e80-\u2fdf\u3040-\u30ff\u3100-\u312f"
             "\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f")
_WORD = f"[^\\W{_UNSPACED}]"  # a letter, digit or underscore of a spaced script
_IS_WORD = re.compile(_WORD).fullmatch
# Word boundaries for keywords, written so that the keyword pattern still starts with a branch of
# literals: after a first character that is a word character, "the one before it is not" (a
# two-character look-behind); after the keyword, "not between two word characters" (true after a
# Han character or punctuation, whatever follows).
_START = f"(?<!{_WORD}.)"
_END = f"(?!(?<={_WORD}){_WORD})"
# A regex that refers to its own groups cannot share an alternation (the numbers would shift).
_SELF_REFERENCE = re.compile(r"\\[1-9]|\\g<|\(\?P[<=]|\(\?\(")
_LEADING_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")


def fold(text: str) -> str:
    """Lower case, one code point for one: str.lower() except U+0130 (the only code point whose
    lower case is two), so offsets into the folded text are offsets into the original."""
    low = text.lower()
    if len(low) != len(text):
        low = text.replace("\u0130", "i").lower()
    return low


class RuleError(ValueError):
    """A rule that cannot be compiled; the message starts with where it is (`words.txt:12`)."""


@dataclass(frozen=True, slots=True)
class Rule:
    id: str  # "keyword 3", "regex 1", "words.txt:12", "en.ignore_previous"
    text: str  # the keyword, or the regex source
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Hit:
    start: int
    end: int
    rule: Rule


def read_entries(path: str, display: str) -> list[tuple[str, str]]:
    """(rule id, entry) for each line of a rule file: UTF-8, one entry per line, blank lines and
    lines starting with `#` skipped, surrounding white space stripped."""
    with open(path, encoding="utf-8-sig") as f:
        lines = f.read().splitlines()
    out = []
    for number, line in enumerate(lines, 1):
        entry = line.strip()
        if entry and not entry.startswith("#"):
            out.append((f"{display}:{number}", entry))
    return out


def _regex_body(rule: Rule) -> str:
    """The regex source checked alone, its leading global flags made local so it can sit in an
    alternation: `(?i)abc` -> `(?i:abc)`."""
    try:
        compiled = re.compile(rule.text)
    except re.error as e:
        raise RuleError(f"{rule.id}: bad regex: {e}") from None
    if compiled.fullmatch(""):
        raise RuleError(f"{rule.id}: the regex matches the empty string")
    m = _LEADING_FLAGS.match(rule.text)
    if m is None:
        return rule.text
    rest = rule.text[m.end():]
    if "x" in m.group(1):
        rest += "\n"  # a trailing `# comment` must not swallow the closing parenthesis
    return f"(?{m.group(1)}:{rest})"


def _top_level(src: str) -> list[str]:
    """`src` split at its top-level `|` (outside groups and character classes)."""
    pieces: list[str] = []
    depth, start, i, n = 0, 0, 0, len(src)
    while i < n:
        c = src[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            i += 1
            if i < n and src[i] == "^":
                i += 1
            if i < n and src[i] == "]":
                i += 1
            while i < n and src[i] != "]":
                i += 2 if src[i] == "\\" else 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            pieces.append(src[start:i])
            start = i + 1
        i += 1
    pieces.append(src[start:])
    return pieces


_ESCAPE = re.compile(r"\\.", re.DOTALL)


def _cased(src: str) -> bool:
    r"""The regex has a character with a case (outside escapes such as \S, \W): it must be matched
    as `(?i:...)`; one without can be matched as it is against folded text (faster)."""
    return any(c != c.lower() for c in _ESCAPE.sub("", src))


# A leading test that several regexes can share (it then runs once per position, not once each):
# a word boundary, or a look-ahead at one character class.
_ANCHOR = re.compile(r"\\b|\(\?=\[(?:[^\]\\]|\\.)+\]\)")
_LOOKAROUND = re.compile(r"\(\?<?[=!]")
try:  # the regex parser's width bounds: a private module, so only an optimisation
    _sre_parser: Any = importlib.import_module("re._parser")
except ImportError:  # pragma: no cover
    _sre_parser = None


def _reach(body: str, cap: int) -> int:
    r"""How many characters from its start a match of `body` can need to see: its longest match
    plus one (a `\b` looks at the next character) when that is known and below `cap`, else `cap`
    (unbounded repeats, look-arounds: the declared `max_match_chars`)."""
    if _sre_parser is None or _LOOKAROUND.search(body):
        return cap
    try:
        width = int(_sre_parser.parse(body).getwidth()[1])
    except Exception:  # pragma: no cover (the body compiled already)
        return cap
    return min(width + 1, cap)


_Node = dict[str, "_Node"]
_END_OF_WORD = "<end>"  # a node key longer than one character: never a keyword's


def _keyword_pattern(words: Sequence[str], whole_words: bool) -> str:
    """One alternation matching any of `words` (folded), as a trie: a shared prefix is tested once,
    and at each node the longer continuations come before the word that ends there (longest
    first). Its root is a branch of literals, so CPython's engine skips, in C, every position
    whose character starts no keyword (the pattern's "charset prefix")."""
    root: _Node = {}
    for w in words:
        node = root
        for ch in w:
            node = node.setdefault(ch, {})
        node[_END_OF_WORD] = {}

    def emit(node: _Node) -> str:
        alts = [re.escape(ch) + emit(child) for ch, child in node.items() if len(ch) == 1]
        if _END_OF_WORD in node:
            return "(?:" + "|".join(alts) + ")?" if alts else ""
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    alts = [re.escape(ch) + (_START if whole_words and _IS_WORD(ch) else "") + emit(child)
            for ch, child in root.items()]
    return "(?:" + "|".join(alts) + ")" + (_END if whole_words else "")


_CATEGORY_CLASS = {"CATEGORY_DIGIT": r"\d", "CATEGORY_NOT_DIGIT": r"\D", "CATEGORY_SPACE": r"\s",
                   "CATEGORY_NOT_SPACE": r"\S", "CATEGORY_WORD": r"\w", "CATEGORY_NOT_WORD": r"\W"}


def _has_case(lo: int, hi: int) -> bool:
    """Some character of the range has a case (a wide range is assumed to)."""
    return hi - lo > 4096 or any(chr(c).lower() != chr(c) for c in range(lo, hi + 1))


def _class_char(c: str) -> str:
    return "\\" + c if c in "\\]^-[" else c


def _first_class(src: str) -> set[str] | None:
    """The items of a character class holding every character a match of `src` (matched against
    folded text) can start with, or None when that is not known (a negated class, `.`, ...)."""
    if _sre_parser is None:
        return None  # pragma: no cover
    try:
        tree = _sre_parser.parse(src)
    except Exception:  # pragma: no cover (compiled already)
        return None
    items: set[str] = set()

    def seq(data: Any, ic: bool) -> bool | None:
        """Adds the first characters of a sequence; True: it can match empty, None: unknown."""
        for op, av in data:
            name = str(op)
            if name in ("AT", "ASSERT", "ASSERT_NOT"):
                continue
            if name == "LITERAL":
                items.add(_class_char(chr(av).lower() if ic else chr(av)))
                return False
            if name == "IN":
                for iop, iav in av:
                    iname = str(iop)
                    if iname == "LITERAL":
                        items.add(_class_char(chr(iav).lower() if ic else chr(iav)))
                    elif iname == "RANGE" and not (ic and _has_case(iav[0], iav[1])):
                        items.add(f"{_class_char(chr(iav[0]))}-{_class_char(chr(iav[1]))}")
                    elif iname == "CATEGORY" and str(iav) in _CATEGORY_CLASS:
                        items.add(_CATEGORY_CLASS[str(iav)])
                    else:
                        return None
                return False
            if name == "BRANCH":
                empty = False
                for sub in av[1]:
                    r = seq(sub, ic)
                    if r is None:
                        return None
                    empty = empty or r
                if not empty:
                    return False
                continue
            if name == "SUBPATTERN":
                _, add, remove, sub = av
                r = seq(sub, (ic or bool(add & re.IGNORECASE)) and not remove & re.IGNORECASE)
            elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                r = seq(av[2], ic)
                if r is False and av[0] == 0:
                    r = True
            elif name == "ATOMIC_GROUP":
                r = seq(av, ic)
            else:
                return None
            if r is None:
                return None
            if not r:
                return False
        return True

    return items if seq(tree, False) is False else None


_UNSELECTIVE = {r"\w", r"\W", r"\S", r"\D"}  # first-character classes too wide to be worth a test


def _guarded(pieces: Sequence[str]) -> tuple[str, list[str], list[str]]:
    """(a look-ahead class test, the pieces it guards, the others): the pieces whose first
    characters are known and few share one test, instead of the engine entering each of them at
    every position."""
    inside: list[str] = []
    outside: list[str] = []
    items: set[str] = set()
    for piece in pieces:
        first = _first_class(piece)
        if first is None or first & _UNSELECTIVE:
            outside.append(piece)
        else:
            inside.append(piece)
            items |= first
    if len(inside) < 2:
        return "", [], list(pieces)
    return "(?=[" + "".join(sorted(items)) + "])", inside, outside


class RuleSet:
    r"""One rule set compiled: `action` applies to every rule.

    Two patterns at most, whatever the number of rules: the keywords (a trie whose root is a
    branch of literals, so the engine skips in C the positions no keyword starts at), and the
    regexes (one alternation: a regex is split at its top-level `|`, the pieces that start with
    `\b` share one `\b(?:...)`, and pieces whose first characters are known and few share one
    look-ahead class test). A regex with back-references is compiled on its own. Hits are merged
    as one alternation would give them: leftmost first, keywords before regexes at the same start.
    There are no capturing groups (each costs a MARK per attempt): which regex matched is found
    after a hit, by trying the alternatives alone, in the same order, at its start.

    `hold` is how many trailing characters a streamed text must keep back so that no match can
    straddle what was released: the longest keyword (plus one for its word boundary), or a regex's
    reach (its longest match + 1 when bounded, else `max_match_chars`), minus one. `context`:
    released characters kept for the next scan's look-behind."""

    __slots__ = ("_keywords", "_prefixes", "_scans", "action", "context", "hold", "name", "size")

    def __init__(self, name: str, action: Action, keywords: Sequence[Rule], regexes: Sequence[Rule], *,
                 whole_words: bool = True, max_match_chars: int = 256) -> None:
        self.name = name
        self.action = action
        self._keywords: dict[str, Rule] = {}
        for rule in keywords:
            k = fold(rule.text.strip())
            if not k:
                continue
            if len(k) > MAX_KEYWORD_CHARS:
                raise RuleError(f"{rule.id}: a keyword is at most {MAX_KEYWORD_CHARS} characters")
            self._keywords.setdefault(k, rule)
        # (pattern, its alternatives alone, in order, with their rules; None: the keywords)
        self._scans: list[tuple[re.Pattern[str], list[tuple[re.Pattern[str], Rule]] | None]] = []
        need = 0
        if self._keywords:
            self._scans.append((re.compile(_keyword_pattern(list(self._keywords), whole_words)), None))
            need = max(len(k) for k in self._keywords) + (1 if whole_words else 0)
        isolated: list[tuple[re.Pattern[str], list[tuple[re.Pattern[str], Rule]] | None]] = []
        anchored: dict[str, list[tuple[str, Rule]]] = {}  # leading \b or (?=[...]) -> pieces
        for rule in regexes:
            body = _regex_body(rule)
            need = max(need, _reach(body, max_match_chars))
            if _SELF_REFERENCE.search(body):
                alone = re.compile(body, re.IGNORECASE)
                isolated.append((alone, [(alone, rule)]))
                continue
            for piece in _top_level(body):
                m = _ANCHOR.match(piece)
                anchor = m.group() if m is not None and m.end() < len(piece) else ""
                piece = piece[len(anchor):]
                anchored.setdefault(anchor, []).append((f"(?i:{piece})" if _cased(piece) else f"(?:{piece})", rule))
        parts: list[str] = []
        order: list[tuple[re.Pattern[str], Rule]] = []
        for anchor, pieces in anchored.items():
            rule_of = {src: rule for src, rule in reversed(pieces)}
            guard, inside, outside = _guarded(list(dict.fromkeys(src for src, _ in pieces)))
            alts = ([guard + "(?:" + "|".join(inside) + ")"] if inside else []) + outside
            if anchor:
                parts.append(anchor + "(?:" + "|".join(alts) + ")")  # one anchor test for all
            else:
                parts += alts
            order += ((re.compile(anchor + src), rule_of[src]) for src in (*inside, *outside))
        if parts:
            self._scans.append((re.compile("|".join(parts)), order))
        self._scans += isolated
        self.hold = max(need - 1, 0)
        # Keywords only: every prefix of every keyword, so a stream holds back just the tail that
        # could still become one (usually nothing: chunks keep their size and pace). With regexes
        # the reach is not known per text: the whole `hold` window.
        self._prefixes: frozenset[str] | None = None if regexes else frozenset(
            k[:i] for k in self._keywords for i in range(1, len(k) + 1))
        self.context = 64 if regexes else 1
        self.size = len(self._keywords) + len(regexes)

    def __bool__(self) -> bool:
        return self.size > 0

    def pending(self, buf: str, start: int) -> int:
        """How many trailing characters of `buf` (from `start` on) must wait for more text: the
        longest tail that is the start of a keyword (a whole keyword too: a word character may
        still follow it), or the `hold` window when there are regexes."""
        prefixes = self._prefixes
        if prefixes is None:
            return self.hold
        tail = fold(buf[max(start, len(buf) - self.hold - 1):])
        for k in range(len(tail), 0, -1):
            if tail[-k:] in prefixes:
                return k
        return 0

    def _hit(self, low: str, m: re.Match[str], order: list[tuple[re.Pattern[str], Rule]] | None) -> Hit:
        """The hit with its rule: for a regex, the first alternative (in the pattern's order) that
        matches alone at the start is the one the pattern took."""
        if order is None:
            return Hit(m.start(), m.end(), self._keywords[m.group()])
        start = m.start()
        for pattern, rule in order:
            if pattern.match(low, start) is not None:
                return Hit(start, m.end(), rule)
        raise AssertionError("a hit that no alternative matches")  # pragma: no cover

    def hits(self, text: str, pos: int = 0) -> Iterator[Hit]:
        """Non-overlapping matches from `pos` on, leftmost first (at the same start, the earlier
        pattern's: keywords, then regexes)."""
        low = fold(text)
        scans = self._scans
        if len(scans) == 1:
            pattern, order = scans[0]
            for m in pattern.finditer(low, pos):
                if m.end() > m.start():
                    yield self._hit(low, m, order)
            return
        # several patterns: the next match of each from `pos`; take the leftmost, move on past it
        nxt = [p.search(low, pos) for p, _ in scans]
        while True:
            best: re.Match[str] | None = None
            which = 0
            for i, found in enumerate(nxt):
                if found is not None and (best is None or found.start() < best.start()):
                    best, which = found, i
            if best is None:
                return
            if best.end() > best.start():
                yield self._hit(low, best, scans[which][1])
            pos = max(best.end(), best.start() + 1)
            for i, found in enumerate(nxt):
                if found is not None and found.start() < pos:
                    nxt[i] = scans[i][0].search(low, pos)

    def first(self, text: str) -> Hit | None:
        """The first match, or None (one search per pattern)."""
        if len(self._scans) == 1:
            low = fold(text)
            pattern, order = self._scans[0]
            m = pattern.search(low)
            return self._hit(low, m, order) if m is not None and m.end() > m.start() else None
        return next(self.hits(text), None)

    def redact(self, text: str) -> tuple[str, int]:
        """`text` with every match replaced by `***`, and how many there were."""
        out: list[str] = []
        cut = 0
        for hit in self.hits(text):
            out.append(text[cut:hit.start])
            out.append(REDACTED)
            cut = hit.end
        if not out:
            return text, 0
        out.append(text[cut:])
        return "".join(out), len(out) // 2


class StreamBuffer:
    """Scans one streamed text (an answer's content, or its reasoning) across chunk boundaries.

    `feed` scans what is held plus the new text; a match is decided once at least `hold`
    characters follow its start (no longer keyword, no word character after it, can come then),
    so everything up to the last `hold` characters is released, redacted, or (block) refused.
    What is held back never exceeds `rules.hold` characters, and held text that matched a block
    rule is never released."""

    __slots__ = ("context", "held", "redacted", "rules")

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.held = ""
        self.context = ""
        self.redacted = 0

    def feed(self, text: str, final: bool = False) -> tuple[str, Hit | None]:
        """(text to release now, the hit when a block rule matched). `final`: the text is over,
        release (or refuse) everything held."""
        rules = self.rules
        pos = len(self.context)
        buf = self.context + self.held + text
        n = len(buf)
        limit = n if final else n - rules.pending(buf, pos)
        if limit <= pos:  # nothing can be decided yet: no scan
            self.held = buf[pos:]
            return "", None
        out: list[str] = []
        cut = pos
        for hit in rules.hits(buf, pos):
            if hit.start >= limit:
                break
            if rules.action == "block":
                self.held = buf[pos:]
                return "", hit
            out.append(buf[cut:hit.start])
            out.append(REDACTED)
            cut = hit.end
            self.redacted += 1
        end = max(limit, cut)
        out.append(buf[cut:end])
        self.held = buf[end:]
        self.context = buf[max(0, end - rules.context):end]
        return "".join(out), None


# -- rule files, hot reload ----------------------------------------------------------------------

Signature = tuple[int, int, int] | None  # (mtime_ns, size, inode); None: missing


def signature(path: str) -> Signature:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """What one rule set is made of: inline entries and files (paths as configured, and
    resolved against the config directory)."""

    name: str
    action: Action
    keywords: tuple[str, ...] = ()
    keyword_files: tuple[str, ...] = ()
    regexes: tuple[str, ...] = ()
    regex_files: tuple[str, ...] = ()
    whole_words: bool = True
    max_match_chars: int = 256


class RuleSource:
    """A RuleSet built from a RuleSpec, rebuilt when one of its files changes.

    `current` is what the hot path reads (one attribute). `due()` is the hot path's only check: a
    clock comparison, true at most once every `interval` seconds; `reload()` (run off the hot
    path, in a worker thread) compares file signatures (mtime, size, inode) and rebuilds when one
    changed. A file that fails to load (missing, unreadable, a bad regex) keeps the previous
    rules; the reason is logged once per version of the file, with file:line."""

    def __init__(self, spec: RuleSpec, base_dir: str, *, interval: float = 5.0,
                 clock: Callable[[], float]) -> None:
        self.spec = spec
        self.interval = interval
        self._clock = clock
        self._files = [(f, os.path.join(base_dir, f)) for f in (*spec.keyword_files, *spec.regex_files)]
        self._sigs = self._signatures()
        self.current = self._build()  # at start, a bad file is a configuration error: raised
        self.reloading = False
        self._next_check = clock() + interval
        self.last_error: str | None = None

    @property
    def watches(self) -> bool:
        return bool(self._files) and self.interval > 0

    def _signatures(self) -> list[Signature]:
        return [signature(path) for _, path in self._files]

    def _build(self) -> RuleSet:
        spec = self.spec
        resolved = dict(self._files)
        keywords = [Rule(f"keyword {i}", k) for i, k in enumerate(spec.keywords, 1)]
        regexes = [Rule(f"regex {i}", r) for i, r in enumerate(spec.regexes, 1)]
        for shown in spec.keyword_files:
            keywords += (Rule(rid, entry) for rid, entry in self._read(resolved[shown], shown))
        for shown in spec.regex_files:
            regexes += (Rule(rid, entry) for rid, entry in self._read(resolved[shown], shown))
        return RuleSet(spec.name, spec.action, keywords, regexes,
                       whole_words=spec.whole_words, max_match_chars=spec.max_match_chars)

    @staticmethod
    def _read(path: str, shown: str) -> list[tuple[str, str]]:
        try:
            return read_entries(path, shown)
        except (OSError, UnicodeDecodeError) as e:
            raise RuleError(f"{shown}: cannot read: {e}") from None

    def due(self) -> bool:
        """Time to look at the files again (and no reload is running): the hot path's check."""
        return self.watches and not self.reloading and self._clock() >= self._next_check

    def reload(self) -> bool:
        """Rebuild when a file changed; True when new rules are in place. Blocking (file reads,
        compiling): call it from a worker thread."""
        try:
            sigs = self._signatures()
            if sigs == self._sigs:
                return False
            try:
                rules = self._build()
            except RuleError as e:
                # remember this version: the next attempt is when a file changes again
                self._sigs = sigs
                self.last_error = str(e)
                log.warning("content_filter: rule set %r: %s; the previous rules stay in force",
                            self.spec.name, e)
                return False
            self._sigs = sigs
            self.current = rules
            self.last_error = None
            log.info("content_filter: rule set %r reloaded (%d rules)", self.spec.name, rules.size)
            return True
        finally:
            self._next_check = self._clock() + self.interval
            self.reloading = False


# -- prompt injection ----------------------------------------------------------------------------

# (id, weight, regex). Matched case-insensitively; a request's score is the sum of the weights of
# the distinct rules that matched, refused at `injection_threshold` (1.0). Weight 1.0: a phrase
# that is an attack on its own; 0.5: a signal that is common in harmless prompts too ("act as",
# "developer mode", "你现在是") and counts only with another one. Strongest first: at one position
# the first alternative wins.
_DET = r"(?:(?:all|any|every|of|the|your|my|these|those|its|this|that)\s+)*"
_PRIOR = r"(?:previous|prior|above|earlier|preceding|initial|original|former|system|existing|old)"
_ORDERS = (r"(?:instructions?|prompts?|directions?|directives?|guidelines?|rules|guidance|commands?"
           r"|context|messages?|restrictions|programming|constraints|settings|policies)")
_ZH_IGNORE = r"(?:忽略|忽视|無視|无视|忽視|不要理会|不要理會|别管|別管|忘记|忘記|忘掉|抛开|拋開|跳过|跳過|绕过|繞過)"
_ZH_ORDERS = (r"(?:指令|指示|提示词|提示詞|提示|规则|規則|设定|設定|规定|規定|要求|限制|命令|准则|準則|政策|"
              r"对话|對話|说明|說明|安全规则|安全規則)")
_ZH_REVEAL = (r"(?:输出|輸出|打印|显示|顯示|告诉我|告訴我|给我看|給我看|泄露|洩露|透露|复述|複述"
              r"|重复|重複|列出|展示|公开|公開|说出|說出)")

INJECTION_RULES: tuple[tuple[str, float, str], ...] = (
    # -- English, 1.0
    ("en.ignore_previous", 1.0,
     rf"\b(?:ignore|disregard|forget|skip|override|overlook|bypass|drop|discard)\s+{_DET}{_PRIOR}\s+"
     rf"(?:\w+\s+)?{_ORDERS}"),
    ("en.ignore_system", 1.0,
     r"\b(?:ignore|disregard)\s+(?:the\s+)?(?:instructions|rules|guidelines)\s+(?:in|from|of)\s+(?:your|the)\s+"
     r"(?:system|developer)"),
    ("en.ignore_yours", 1.0,
     r"\b(?:ignore|disregard|forget|bypass|override|disable|turn\s+off|remove)\s+(?:all\s+)?(?:of\s+)?your\s+"
     r"(?:own\s+)?(?:programming|guardrails|rules|guidelines|instructions|restrictions|safety|safeguards|filters?"
     r"|training|ethics|content\s+(?:polic(?:y|ies)|restrictions|filters?)|safety\s+\w+)"),
    ("en.ignore_safety", 1.0,
     r"\b(?:ignore|disregard|bypass|override|disable|turn\s+off)\s+(?:all\s+|any\s+|the\s+)*(?:safety|content|ethical|moral)"
     r"\s+(?:guidelines|policies|policy|filters?|restrictions|protocols|rules|measures)"),
    ("en.ignore_user", 1.0, r"\bignore\s+(?:the\s+)?user'?s?\s+(?:request|question|instructions?|message)"),
    ("en.disregard_what", 1.0, r"\bdisregard\s+what\s+(?:the\s+system|you\s+were|your\s+\w+)\s+(?:told|said|gave)"),
    ("en.forget_everything", 1.0,
     r"\bforget\s+(?:everything|all(?:\s+of\s+it)?|what)\s+(?:you\s+(?:were|have\s+been)\s+(?:told|given)|(?:that\s+)?"
     r"(?:i|we)\s+said|above|before)"),
    ("en.stop_following", 1.0,
     r"\b(?:stop|quit)\s+(?:following|obeying)\s+(?:your|the)\s+(?:guidelines|rules|instructions|programming|policies)"),
    ("en.prior_void", 1.0,
     rf"\b{_PRIOR}\s+(?:instructions|rules|guidelines|prompts?)\s+(?:are|were|is)\s+(?:now\s+)?(?:outdated|void|invalid"
     r"|cancel+ed|revoked|obsolete|no\s+longer\s+(?:valid|apply|in\s+effect))"),
    ("en.system_override", 1.0, r"\b(?:system|admin|developer)\s+override\b|\[system\]\(#"),
    ("en.reveal_prompt", 1.0,
     r"\b(?:reveal|print|show|output|repeat|display|leak|dump|quote|recite|give|tell|share|spell\s+out|what\s+(?:is|was|are|were)"
     r"|what's)\s+(?:me\s+|us\s+)?(?:back\s+)?(?:your|the)\s+(?:exact\s+|full\s+|entire\s+|complete\s+|original\s+|hidden\s+"
     r"|secret\s+|confidential\s+|initial\s+)*(?:system\s+(?:prompt|message|instructions)|initial\s+(?:prompt|instructions)"
     r"|hidden\s+(?:prompt|instructions|rules)|developer\s+(?:message|prompt|instructions)|(?:pre-?)?prompt\b"
     r"|instructions\b(?!\s+(?:for|to|on|of|in)\b)|configuration)"),
    ("en.given_instructions", 1.0,
     r"\binstructions\s+(?:that\s+)?you\s+(?:were|have\s+been|got)\s+(?:given|told)"),
    ("en.text_above", 1.0,
     r"\b(?:repeat|print|output|show|copy)\s+(?:the\s+)?(?:text|words|everything|all|content)\s+(?:above|before\s+this)"),
    ("en.do_anything_now", 1.0, r"\bdo\s+anything\s+now\b|\byou\s+are\s+(?:now\s+)?(?:dan|stan|dude)\b"),
    ("en.developer_mode_on", 1.0, r"\bwith\s+developer\s+mode\b|\bdeveloper\s+mode\s+(?:enabled|activated)"),
    ("en.jailbreak_mode", 1.0, r"\bjailbr(?:eak|oken)\s+(?:mode|prompt)|\byou\s+are\s+(?:now\s+)?(?:in\s+)?jailbr"),
    ("en.no_longer_bound", 1.0, r"\bno\s+longer\s+(?:bound|restricted|limited|constrained)\s+by"),
    ("en.broken_free", 1.0, r"\bbroken\s+free\s+of\b|\bfreed\s+from\s+(?:the\s+)?(?:typical\s+)?confines"),
    ("en.decode_follow", 1.0,
     r"\b(?:decode|decrypt|translate)\s+(?:this|the\s+following|it)\b[^.\n]{0,40}\b(?:follow|execute|obey|do\s+what|run)\b"),
    # -- English, 0.5
    ("en.no_rules", 0.5,
     r"\b(?:no|without(?:\s+any)?|free\s+(?:of|from)|not\s+bound\s+by|ignores?\s+all|abide\s+by\s+any|if\s+you\s+had\s+no)\s+"
     r"(?:\w+\s+)?(?:rules|restrictions|limits|limitations|filters?|filtering|guidelines|censorship|content\s+(?:polic(?:y|ies)"
     r"|filters?))\b"),
    ("en.unfiltered", 0.5, r"\b(?:unfiltered|uncensored|amoral|unrestricted|unethical)\b"),
    ("en.never_refuse", 0.5,
     r"\b(?:never|not\s+allowed\s+to|don't|do\s+not|without)\s+(?:ever\s+)?refus(?:e|es|ing)\b|\bnever\s+refuses\b"),
    ("en.persona", 0.5,
     r"\b(?:pretend\s+(?:to\s+be|you(?:'re|\s+are|\s+have)?)|act\s+as|role-?\s?play(?:\s+as)?|you\s+are\s+now|from\s+now\s+on\s+"
     r"you\s+(?:are|will)|immerse\s+yourself)\b"),
    ("en.stay_in_character", 0.5, r"\bstay\s+in\s+character\b|\bbreak\s+the\s+rules\b|\bmoralizing\s+rant\b"),
    ("en.developer_mode", 0.5,
     r"\bdeveloper\s+mode\b|\bmaintenance\s+mode\b(?=[^.]{0,40}\b(?:disable|restrictions|filters?))"),
    ("en.i_am_developer", 0.5, r"\bi\s+am\s+(?:your|an?\s+openai)\s+(?:developer|creator|admin)"),
    ("en.new_instructions", 0.5,
     r"\byour\s+new\s+(?:instructions|task|directive|rules?)\s+(?:is|are)\b|\bnew\s+directive\b"),
    ("en.grandma", 0.5, r"\b(?:deceased|late|dead)\s+grand(?:ma|mother)|\b(?:product|activation|license)\s+keys\b"),
    ("en.ai_note", 0.5,
     r"\b(?:note|message)\s+to\s+(?:any\s+)?(?:ai|llm|assistant)|\bai\s+(?:assistant|agents?)\s*(?::|reading)"),
    ("en.secret", 0.5, r"\b(?:admin|administrator|root)\s+password\b"),
    # -- Chinese, 1.0
    ("zh.ignore_previous", 1.0,
     rf"{_ZH_IGNORE}(?:掉)?(?:你|您)?(?:之前|以前|先前|此前|前面|上面|以上|上述|原来|原來|原有|原先|所有|全部|一切|的|收到|"
     rf"被设置|系统|系統|你的|安全|内容|內容)+[^。！？\n]{{0,6}}?{_ZH_ORDERS}"),
    ("zh.ignore_user", 1.0, rf"{_ZH_IGNORE}(?:掉)?用户的?(?:请求|問題|问题|指令|要求)"),
    ("zh.forget_all", 1.0, r"(?:忘记|忘掉|忘記)(?:前面|之前|上面|以前)?(?:说的|說的|讲的|講的)?(?:一切|所有)"),
    ("zh.stop_obeying", 1.0,
     r"(?:不要|不再|停止|别再|別再)(?:遵守|遵循|服从|服從|理会|理會)[^。！？\n]{0,10}?(?:规定|規定|规则|規則|准则|準則|指令|限制|设定)"),
    ("zh.orders_void", 1.0,
     r"(?:指令|设定|設定|规则|規則|限制)(?:已经|已經|已|全部|都)*(?:作废|作廢|失效|无效|無效|解除)"),
    ("zh.lift_limits", 1.0,
     r"解除(?:了)?(?:你的)?(?:所有|全部|一切)(?:的)?限制"
     r"|(?:关闭|關閉|禁用|取消)(?:你的)?(?:内容审查|內容審查|安全(?:限制|审查|过滤)|所有限制)"),
    ("zh.override_safety", 1.0,
     r"(?:覆盖|覆蓋|绕过|繞過|无视|無視|关闭|關閉)(?:你|您)?的?安全(?:协议|協議|规则|規則|限制|措施|设置|設置)"),
    ("zh.reveal_prompt", 1.0,
     rf"{_ZH_REVEAL}(?:一下)?(?:你|您)的?(?:完整的?|全部的?|所有的?)?(?:系统|系統|初始|隐藏|隱藏|原始|内部|內部)?(?:的)?"
     r"(?:提示词|提示詞|提示|指令|设定|設定|规则|規則|配置|system\s*prompt)"),
    ("zh.reveal_ba", 1.0,
     r"把(?:你|您)?的?(?:全部|所有|完整的?)?(?:系统|系統|初始|隐藏|隱藏|原始)(?:的)?(?:提示词|提示詞|提示|指令|设定|規則|规则)"
     r"|把(?:你|您)的?(?:全部|所有|完整的?)?(?:提示词|提示詞|提示|指令|设定|規則|规则)[^。！？\n]{0,12}?"
     r"(?:告诉|告訴|输出|輸出|复述|複述|列出|打印|重复|重複|显示|顯示)"),
    ("zh.reveal_received", 1.0,
     r"(?:打印|输出|輸出|显示|顯示|复述|泄露|洩露|透露)[^。！？\n]{0,15}?(?:收到的?|开始时|開始時)[^。！？\n]{0,10}?"
     r"(?:系统|系統|开发者|開發者)?(?:消息|指令|提示)"),
    ("zh.repeat_above", 1.0,
     r"(?:重复|重複|复述|複述|输出|輸出|打印)(?:一遍)?(?:你)?(?:上面|以上|前面)的?(?:所有|全部)?(?:内容|內容|文字)"),
    ("zh.not_assistant", 1.0, r"你不再是(?:一个|一個)?(?:助手|ai助手|人工智能助手)"),
    ("zh.jailbreak_mode", 1.0, r"越狱模式|越獄模式|已越狱|已越獄"),
    # -- Chinese, 0.5
    ("zh.no_limits", 0.5,
     r"没有任何限制|沒有任何限制|不受任何[^。！？\n]{0,6}?限制|没有(?:任何)?(?:道德|伦理|倫理)(?:的)?(?:约束|約束|限制|底线)|不受约束|不受約束"
     r"|无视一切|無視一切|可以说任何话|可以說任何話|可以做任何事|没有限制|沒有限制"),
    ("zh.never_refuse", 0.5, r"不许拒绝|不許拒絕|不能拒绝|不要拒绝|不得拒绝|永远不(?:会)?拒绝"),
    ("zh.persona", 0.5, r"你现在是|你現在是|扮演|假装你是|假裝你是|假设你|假設你|从现在起你|从现在开始，?你要|你叫"),
    ("zh.stay_in_role", 0.5, r"保持(?:这个|這個)?角色|不要跳出|不要出戏"),
    ("zh.developer_mode", 0.5, r"开发者模式|開發者模式|维护模式(?=[^。！？\n]{0,12}(?:关闭|解除))"),
    ("zh.i_am_developer", 0.5, r"我是你的(?:开发者|開發者|创造者|管理员)"),
    ("zh.new_task", 0.5, r"(?:你的)?新(?:的)?(?:任务|任務|指令)是"),
    ("zh.grandma", 0.5, r"去世的(?:奶奶|外婆|祖母)|激活(?:密钥|码|碼|密鑰)"),
)

# Long runs that may be an encoded instruction (base64, base64url, hex): decoded, they count when
# they are text (0.5), and what they say is scored with the same rules (1.0 more when it scores).
# Looked for only in white-space separated tokens of 40 characters or more (a split is C-fast).
BLOB_CHARS = 40
_BLOB = re.compile(rf"[A-Za-z0-9+/_-]{{{BLOB_CHARS},}}={{0,2}}")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")


def _decoded_text(blob: str) -> tuple[str, str] | None:
    """(kind, text) when the blob decodes (hex first, then base64) to text: UTF-8, printable."""
    try:
        if _HEX.fullmatch(blob):
            kind, raw = "hex", bytes.fromhex(blob)
        else:
            s = blob.rstrip("=").replace("-", "+").replace("_", "/")
            kind, raw = "base64", base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
        text = raw.decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if len(text) < 16 or not text.replace("\n", " ").isprintable():
        return None
    return kind, text


class InjectionScanner:
    """Scores texts against INJECTION_RULES: one RuleSet (one scan of the folded text), plus the
    encoded blobs among its long tokens."""

    def __init__(self, rules: Sequence[tuple[str, float, str]] = INJECTION_RULES) -> None:
        self.rules = RuleSet("injection", "block", [], [Rule(rid, src, weight) for rid, weight, src in rules])

    def matches(self, text: str, depth: int = 0) -> dict[str, float]:
        """{rule id: weight} of the rules that match in `text`."""
        found = {hit.rule.id: hit.rule.weight for hit in self.rules.hits(text)}
        if len(text) >= BLOB_CHARS:
            for token in text.split():
                if len(token) < BLOB_CHARS:
                    continue
                for m in _BLOB.finditer(token):
                    decoded = _decoded_text(m.group())
                    if decoded is None:
                        continue
                    kind, inner = decoded
                    found[f"blob.{kind}"] = 0.5
                    if depth == 0 and sum(self.matches(inner, depth + 1).values()) >= 1.0:
                        found[f"blob.{kind}.instructions"] = 1.0
        return found

    def score(self, texts: Sequence[str]) -> tuple[float, list[str]]:
        """The summed weight of the distinct rules that matched in any of `texts`, and their ids."""
        found: dict[str, float] = {}
        for text in texts:
            if text:
                found.update(self.matches(text))
        return sum(found.values()), sorted(found)
