"""PII detectors: each finds typed spans (type, start, end, text) in a string.

Each detector makes one pass that finds *candidates*, then a validator (pii_checks.py) runs on the
candidates only: checksums, date and length tables, `ipaddress`, entropy. A regex alone would mask
every 11-digit order number as a phone; the validators are what keep precision up.

Speed: a Python regex that cannot start with a literal tries every position of the text, about as
slow as a Python loop. So the passes are shared and gated: one pass finds the runs of digits and
number punctuation, and the phone, ID, card and IPv4 patterns only run, bounded, on runs with
enough digits; e-mail starts from each '@' (str.find), IPv6 from each ':', the key patterns only
when their prefixes or key words occur at all (`in` checks run in C).

Boundaries are explicit lookarounds over ASCII letters and digits, never `\\b`: in Unicode mode
`\\b` treats Chinese characters as word characters, so `电话13812345678。` would not match, and
digits inside a longer number would. Full-width forms (U+FF01..U+FF5E: digits, letters and
punctuation, common in Chinese input) are folded to ASCII by a 1:1 `str.translate`, so offsets in
the folded string are offsets in the original, and spans carry the original text.

Types: EMAIL, PHONE, CN_ID, CARD, IBAN, IP, SECRET (PERSON and LOCATION come from the optional
Presidio path, pii_presidio.py)."""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Callable, Iterable, Iterator
from itertools import pairwise

from clawdbot.plugins.pii_checks import IBAN_LENGTHS, card_prefix_ok, cn_id_ok, iban_ok, luhn_ok
from clawdbot.plugins.pii_scan import TYPES, Scan, Span, fold
from clawdbot.plugins.pii_secrets import find_secrets

__all__ = ["DETECTORS", "TYPES", "Scan", "Span", "detect", "fold", "resolve"]

Detector = Callable[[Scan], Iterable[Span]]

# All patterns run on fold()ed text: a full-width digit, letter or bracket is an ASCII one by then.
# Not inside a longer run of letters/digits, not right after "abc-" or "abc_" (an order or ticket
# id such as ORD-13812345678), not the digits after a decimal point or thousands separator.
_NUM_BEFORE = r"(?<![0-9A-Za-z])(?<![0-9A-Za-z][-_])(?<![0-9][.,])"
_NUM_AFTER = r"(?![0-9A-Za-z])(?![-_][0-9A-Za-z])(?![.,][0-9])"

# -- e-mail -----------------------------------------------------------------------------------

_LOCAL = frozenset(string.ascii_letters + string.digits + "._%+-")
# Domain labels may carry Latin letters with accents (müller.de); the TLD is ASCII letters.
_L = "A-Za-z0-9\u00c0-\u024f"
_DOMAIN = re.compile(rf"(?:[{_L}](?:[{_L}\-]{{0,61}}[{_L}])?\.)+[A-Za-z]{{2,24}}(?![{_L}\-])")
_URL_USERINFO = re.compile(r"://[^\s/@]*$")


def find_emails(sc: Scan) -> Iterator[Span]:
    t = sc.t
    at = t.find("@")
    while at != -1:
        s = at
        while s > 0 and t[s - 1] in _LOCAL:
            s -= 1
        while s < at and t[s] == ".":
            s += 1
        m = _DOMAIN.match(t, at + 1) if 0 < at - s <= 64 else None
        # scheme://user:password@host is a credential (the SECRET detector), not an address.
        if m and t[at - 1] != "." and ".." not in t[s:at] and not _URL_USERINFO.search(t, max(0, s - 200), s):
            yield sc.span("EMAIL", s, m.end())
        at = t.find("@", at + 1)


# -- phones -----------------------------------------------------------------------------------

# Mainland China mobile: optional +86/0086 (maybe in brackets), 3-4-4 with optional separators.
_CN_MOBILE = re.compile(
    r"(?<![0-9A-Za-z+])(?<![0-9A-Za-z][-_])(?<![0-9][.,])"
    r"(?:\(?(?:\+|00)86\)?[ \-]?)?1[3-9]\d(?:[ \-]?\d{4}){2}" + _NUM_AFTER
)
# Prefixes that are not 11-digit subscriber numbers: 140-144 are 13-digit IoT numbers, 154 unused.
_CN_MOBILE_BAD = frozenset({"140", "141", "142", "143", "144", "154"})
# China fixed line with its area code (010, 021, 0755...): the separator or brackets required.
_CN_LANDLINE = re.compile(_NUM_BEFORE + r"(?:\(0\d{2,3}\)[ ]?|0\d{2,3}-)[2-9]\d{6,7}" + _NUM_AFTER)
# North American numbers without +: (555) 123-4567, 555-123-4567, 555.123.4567, 1-800-555-0199
# (the same separator twice; the exchange may start with 1 or 0 as in the ubiquitous 555-123-4567).
_NANP = re.compile(
    _NUM_BEFORE + r"(?:1[ \-.])?(?:\([2-9]\d\d\)[ ]?|[2-9]\d\d([-.]))\d{3}(?(1)\1|-)\d{4}" + _NUM_AFTER
)
# International: +CC then up to 6 groups of digits with single separators (spaces, -, ., (..)).
_INTL = re.compile(r"(?<![0-9A-Za-z+])\+[1-9]\d{0,2}(?:[ \-.]?(?:\(\d{1,4}\)|\d{1,5})){1,6}" + _NUM_AFTER)
_GROUP = re.compile(r"[ \-.]?(?:\(\d{1,4}\)|\d{1,5})")


def _intl_end(t: str, s: int, e: int) -> int:
    """Where a +CC number that starts at s ('+') really ends, 0 if it is not one: E.164 allows 15
    digits, NANP (+1) exactly 11, and a lone digit after a space is the next word ("... 0958 3x")."""
    groups = [(m.end(), sum(c.isdigit() for c in m.group())) for m in _GROUP.finditer(t, s + 1, e)]
    total = sum(d for _, d in groups)
    nanp = t[s + 1] == "1"  # +1 is the only country code that starts with 1
    while groups and (total > (11 if nanp else 15)
                      or (len(groups) > 2 and groups[-1][1] == 1 and t[groups[-2][0]] == " ")):
        total -= groups.pop()[1]
    if not groups or (total != 11 if nanp else total < 8):
        return 0
    return groups[-1][0]


def find_phones(sc: Scan) -> Iterator[Span]:
    t = sc.t
    for rs, re_, digits in sc.runs():
        if digits < 8:
            continue
        if digits >= 11:
            for m in sc.bounded(_CN_MOBILE, rs, re_):
                d = "".join(c for c in m.group() if c.isdigit())
                if d[-11:-8] not in _CN_MOBILE_BAD:
                    yield sc.span("PHONE", m.start(), m.end())
        # Both need a separator or brackets: a run of bare digits is neither.
        if digits >= 10 and (t.find("-", rs, re_) != -1 or t.find("(", rs, re_) != -1
                             or t.find(".", rs, re_) != -1):
            for rx in (_CN_LANDLINE, _NANP):
                for m in sc.bounded(rx, rs, re_):
                    yield sc.span("PHONE", m.start(), m.end())
        if t.find("+", rs, re_) != -1:
            for m in sc.bounded(_INTL, rs, re_):
                e = _intl_end(t, m.start(), m.end())
                if e:
                    yield sc.span("PHONE", m.start(), e)


# -- China resident ID, cards -------------------------------------------------------------------

_CN_ID = re.compile(
    r"(?<![0-9A-Za-z])(?<![0-9][.,])[1-9]\d{5} ?(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])"
    r"(?:0[1-9]|[12]\d|3[01]) ?\d{3}[0-9Xx](?![0-9A-Za-z])(?![.,][0-9])"
)


def find_cn_ids(sc: Scan) -> Iterator[Span]:
    for rs, re_, digits in sc.runs():
        if digits >= 17:  # the 18th may be an X, which ends the run
            for m in sc.bounded(_CN_ID, rs, re_):
                if cn_id_ok(m.group().replace(" ", "")):
                    yield sc.span("CN_ID", m.start(), m.end())


# 13-19 digits: one run, groups of four (the last one shorter), or Amex/Diners 4-6-5 and 4-6-4.
_CARD = re.compile(
    r"(?<![0-9A-Za-z])(?<![0-9][.,])"
    r"(?:\d{13,19}|\d{4}(?:[ \-]\d{4}){2,3}(?:[ \-]\d{1,4})?|\d{4}[ \-]\d{6}[ \-]\d{4,5})"
    r"(?![0-9A-Za-z])(?![.,][0-9])"
)


def find_cards(sc: Scan) -> Iterator[Span]:
    for rs, re_, digits in sc.runs():
        if digits < 13:
            continue
        for m in sc.bounded(_CARD, rs, re_):
            raw = m.group()
            if " " in raw and "-" in raw:  # "4111 1111-1111 1111": not how anyone writes a card
                continue
            d = raw.replace(" ", "").replace("-", "")
            if 13 <= len(d) <= 19 and card_prefix_ok(d) and luhn_ok(d):
                yield sc.span("CARD", m.start(), m.end())


# -- IBAN -------------------------------------------------------------------------------------

# Upper case, as printed and as banks' forms produce them (lower-case IBANs are not looked for:
# it lets the scan skip every position but capitals, in C). The lookbehind comes after the first
# letter for the same reason.
_IBAN = re.compile(r"[A-Z](?<![0-9A-Za-z].)[A-Z]\d\d(?: ?[0-9A-Z]{4}){2,8}(?: ?[0-9A-Z]{1,3})?(?![0-9A-Za-z])")


def find_ibans(sc: Scan) -> Iterator[Span]:
    for m in _IBAN.finditer(sc.t):
        s, raw = m.start(), m.group()
        want = IBAN_LENGTHS.get(raw[:2])
        if want is None:
            continue
        # The pattern may have taken a following 4-character word ("... 3000 BANK"): cut the
        # candidate at the country's length, which must fall at a group boundary.
        n = cut = 0
        for i, c in enumerate(raw):
            if c != " ":
                n += 1
                if n == want:
                    cut = i + 1
                    break
        if not cut or (cut < len(raw) and raw[cut] != " "):
            continue
        if iban_ok(raw[:cut].replace(" ", "")):
            yield sc.span("IBAN", s, s + cut)


# -- IP addresses -----------------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![0-9A-Za-z.])(?:\d{1,3}\.){3}\d{1,3}(?![0-9A-Za-z])(?!\.\d)(?:/(\d{1,2}))?")
# "version 1.2.3.4", "v10.0.0.1", "build 2.0.1.5", "版本 1.0.0.1": dotted version numbers.
_VERSION_BEFORE = re.compile(r"(?<![A-Za-z])(?:version|ver\.?|v|build|release|版本号?)[ :]*$", re.IGNORECASE)
_HEX_COLON = frozenset("0123456789abcdefABCDEF:")
_HEX_COLON_DOT = frozenset("0123456789abcdefABCDEF:.")


def _ipv4(sc: Scan) -> Iterator[Span]:
    t = sc.t
    for rs, re_, _ in sc.runs():
        if t.count(".", rs, re_) < 3:
            continue
        for m in sc.bounded(_IPV4, rs, re_):
            s, e = m.start(), m.end(0) - (len(m.group(1)) + 1 if m.group(1) else 0)
            if _VERSION_BEFORE.search(t, max(0, s - 12), s):
                continue
            try:
                v4 = ipaddress.IPv4Address(t[s:e])  # rejects octets > 255 and leading zeros
            except ValueError:
                continue
            if v4.is_unspecified or v4.is_loopback:  # 0.0.0.0, 127.0.0.1: nobody's address
                continue
            if m.group(1) and int(m.group(1)) < 32 and int(v4) & ((1 << (32 - int(m.group(1)))) - 1) == 0:
                continue  # 10.0.0.0/8: a network, not a host
            yield sc.span("IP", s, e)


def _ipv6(sc: Scan) -> Iterator[Span]:
    t, n = sc.t, len(sc.t)
    i = t.find(":")
    while i != -1:
        s = i
        while s > 0 and t[s - 1] in _HEX_COLON:
            s -= 1
        e = i
        while e < n and t[e] in _HEX_COLON_DOT:
            e += 1
        nxt = t.find(":", e)
        while e > s and (t[e - 1] == "." or (t[e - 1] == ":" and (e - 2 < s or t[e - 2] != ":"))):
            e -= 1  # "...::1." ends a sentence, "2001:db8::1: refused"
        if s > 0 and t[s - 1].isascii() and t[s - 1].isalnum():
            s = t.index(":", s) + 1  # "IPv6:2001:db8::1": the word is not part of the address
            if s < e and t[s] == ":" and t[s - 1] != ":":
                s += 1
        cand = t[s:e]
        colons = cand.count(":")
        # Eight groups (seven colons; six and an IPv4 tail) or a "::": not a time (12:30:45) nor a
        # MAC address, checked before ipaddress (an exception costs). "::", "::1" and "a::b" are
        # nobody's address: a real one has two or more groups and a digit.
        if (("::" in cand and colons >= 2) or colons == 7 or (colons == 6 and "." in cand)) \
                and sum(1 for g in cand.split(":") if g) >= 2 and any(c.isdigit() for c in cand):
            try:
                v6 = ipaddress.IPv6Address(cand)
            except ValueError:
                v6 = None
            if v6 is not None and not (v6.is_unspecified or v6.is_loopback) and (e >= n or t[e] not in "._"):
                yield sc.span("IP", s, e)
        i = nxt


def find_ips(sc: Scan) -> Iterator[Span]:
    yield from _ipv4(sc)
    if ":" in sc.t:
        yield from _ipv6(sc)


DETECTORS: dict[str, Detector] = {
    "EMAIL": find_emails,
    "PHONE": find_phones,
    "CN_ID": find_cn_ids,
    "CARD": find_cards,
    "IBAN": find_ibans,
    "IP": find_ips,
    "SECRET": find_secrets,
}

# Same-length ties go to the type whose validation is the strictest (an 18-digit number that is
# a valid ID and passes Luhn is an ID).
_RANK = {t: i for i, t in enumerate(("CN_ID", "IBAN", "CARD", "SECRET", "EMAIL", "IP", "PHONE"))}


def _by_position(s: Span) -> tuple[int, int]:
    return s.start, s.end


def resolve(spans: Iterable[Span]) -> list[Span]:
    """Non-overlapping spans, in text order: the longest wins, ties to the most specific type."""
    ordered = sorted(spans, key=_by_position)
    if all(a.end <= b.start for a, b in pairwise(ordered)):
        return ordered  # the common case: nothing overlaps
    chosen: list[Span] = []
    for sp in sorted(ordered, key=lambda x: (x.start - x.end, _RANK.get(x.type, 99), x.start)):
        if all(sp.end <= c.start or sp.start >= c.end for c in chosen):
            chosen.append(sp)
    chosen.sort(key=lambda x: x.start)
    return chosen


_IBAN_HINT = re.compile(r"[A-Z]{2}\d\d")


def _possible(sc: Scan) -> frozenset[str] | set[str]:
    """The types a text may hold: each detector's own first condition, checked in C or on the
    shared digit runs. Most chat messages meet none of them, and a detector not started costs
    nothing, where a Python generator that finds nothing costs about a microsecond."""
    t = sc.t
    runs = sc.runs()
    if not runs and "@" not in t and ":" not in t and not _IBAN_HINT.search(t):
        return _SECRET_ONLY
    out = {"SECRET"}
    if "@" in t:
        out.add("EMAIL")
    digits = max((d for _, _, d in runs), default=0)
    if digits >= 8:  # find_phones skips shorter runs; an ID has 17 digits (and an X), a card 13+
        out.add("PHONE")
        if digits >= 13:
            out.add("CARD")
            if digits >= 17:
                out.add("CN_ID")
    if _IBAN_HINT.search(t):
        out.add("IBAN")
    # IPv4: a run with three dots; IPv6: a "::" or the seven (six and an IPv4 tail) colons of
    # eight groups (_ipv6 accepts nothing else)
    if "::" in t or t.count(":") >= 6 or any(t.count(".", s, e) >= 3 for s, e, _ in runs):
        out.add("IP")
    return out


_SECRET_ONLY = frozenset({"SECRET"})


def detect(text: str, types: Iterable[str] = TYPES) -> list[Span]:
    """All PII spans of the given types in `text`, non-overlapping, in order."""
    if not text:
        return []
    sc = Scan(text)
    possible = _possible(sc)
    found: list[Span] = []
    for name in types:
        if name in possible:
            found.extend(DETECTORS[name](sc))
    return resolve(found) if len(found) > 1 else found
