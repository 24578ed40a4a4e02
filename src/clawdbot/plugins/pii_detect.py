"""PII detectors: each finds typed spans (type, start, end, text) in a string.

Every detector is one precompiled regex pass that finds *candidates*, then a validator that runs on
the candidates only (checksums, date and length tables, `ipaddress`, entropy). A regex alone would
mask every 11-digit order number as a phone; the validators are what keep precision up.

Boundaries are explicit lookarounds over ASCII letters and digits, never `\\b`: in Unicode mode
`\\b` treats Chinese characters as word characters, so `电话13812345678。` would not match, and
digits inside a longer number would. Full-width forms (U+FF01..U+FF5E: digits, letters and
punctuation, common in Chinese input) are folded to ASCII by a 1:1 `str.translate`, so offsets in
the folded string are offsets in the original, and spans carry the original text.

Types: EMAIL, PHONE, CN_ID, CARD, IBAN, IP, SECRET (PERSON and LOCATION come from the optional
Presidio path in pii.py)."""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import date
from typing import NamedTuple

TYPES: tuple[str, ...] = ("EMAIL", "PHONE", "CN_ID", "CARD", "IBAN", "IP", "SECRET")


class Span(NamedTuple):
    type: str
    start: int
    end: int
    text: str


# -- normalisation ----------------------------------------------------------------------------

# Full-width forms to ASCII, one character for one character (offsets stay valid).
_FOLD = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_FOLD[0x3000] = 0x20  # ideographic space


def fold(text: str) -> str:
    """Full-width ASCII forms to ASCII; the same length as `text` (ASCII text is returned as is)."""
    return text if text.isascii() else text.translate(_FOLD)


# -- validators (public: the tests and the bench use them) --------------------------------------

def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"  # ISO 7064 MOD 11-2: the check character for sum % 11
# Province-level codes (GB/T 2260) the first two digits must be; 83 is used on residence permits
# for residents of Taiwan, 81/82 for Hong Kong and Macao, 91 for foreigners' permanent residence.
_ID_PROVINCES = frozenset({
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
    50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91,
})


def cn_id_ok(value: str, today: date | None = None) -> bool:
    """An 18-character China resident identity number: province code, a real birth date not in
    the future (from 1900), and the ISO 7064 MOD 11-2 check character."""
    v = value.upper()
    if len(v) != 18 or not v[:17].isdigit() or not (v[17].isdigit() or v[17] == "X"):
        return False
    if int(v[:2]) not in _ID_PROVINCES:
        return False
    try:
        born = date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        return False
    if born.year < 1900 or born > (today or date.today()):
        return False
    s = sum(int(c) * w for c, w in zip(v[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[s % 11] == v[17]


# IBAN length by country (ISO 13616 registry, the countries a customer is likely to have).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20,
    "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18,
    "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24,
    "XK": 20,
}


def iban_ok(value: str) -> bool:
    """Compact, upper-case IBAN: the country's length, check digits 02..98, mod 97 == 1."""
    if IBAN_LENGTHS.get(value[:2]) != len(value) or not value.isalnum() or not value[2:4].isdigit():
        return False
    if not 2 <= int(value[2:4]) <= 98:
        return False
    # Letters become 10..35 (int(c, 36)); the four first characters move to the end.
    return int("".join(str(int(c, 36)) for c in value[4:] + value[:4])) % 97 == 1


def shannon_entropy(s: str) -> float:
    """Bits per character of the string's own character distribution."""
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0


# -- boundaries ---------------------------------------------------------------------------------

# All patterns run on fold()ed text: a full-width colon or bracket is an ASCII one by then.
# Not inside a longer run of letters/digits, not right after "abc-" or "abc_" (an order or ticket
# id such as ORD-13812345678), not the digits after a decimal point or thousands separator.
_NUM_BEFORE = r"(?<![0-9A-Za-z])(?<![0-9A-Za-z][-_])(?<![0-9][.,])"
_NUM_AFTER = r"(?![0-9A-Za-z])(?![-_][0-9A-Za-z])(?![.,][0-9])"

# -- detectors ----------------------------------------------------------------------------------

Detector = Callable[[str, str], Iterable[Span]]  # (folded text, original text) -> spans

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9_%+\-](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_%+\-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
)
_URL_USERINFO = re.compile(r"://[^\s/@]*:$")


def find_emails(t: str, orig: str) -> Iterable[Span]:
    for m in _EMAIL.finditer(t):
        s, e = m.span()
        if ".." in m.group():
            continue
        # user:password@host in a URL is a credential (the SECRET detector), not an address.
        if s and t[s - 1] == ":" and _URL_USERINFO.search(t, max(0, s - 80), s):
            continue
        yield Span("EMAIL", s, e, orig[s:e])


# Mainland China mobile: optional +86/0086 (maybe in brackets), 3-4-4 with optional separators.
_CN_MOBILE = re.compile(
    r"(?<![0-9A-Za-z+])(?<![0-9A-Za-z][-_])(?<![0-9][.,])"
    r"(?:\(?(?:\+|00)86\)?[ \-]?)?1[3-9]\d(?:[ \-]?\d{4}){2}" + _NUM_AFTER
)
# Prefixes that are not 11-digit subscriber numbers: 140-144 are 13-digit IoT numbers, 154 unused.
_CN_MOBILE_BAD = frozenset({"140", "141", "142", "143", "144", "154"})
# China fixed line with its area code (010, 021, 0755...): the separator or brackets required.
_CN_LANDLINE = re.compile(
    _NUM_BEFORE + r"(?:\(0\d{2,3}\)[ ]?|0\d{2,3}-)[2-9]\d{6,7}" + _NUM_AFTER
)
# North American numbers without +1: (555) 123-4567, 555-123-4567, 555.123.4567 (the same
# separator twice; the exchange may start with 1 or 0 as in the ubiquitous 555-123-4567).
_NANP = re.compile(
    _NUM_BEFORE + r"(?:\([2-9]\d\d\)[ ]?|[2-9]\d\d([-.]))\d{3}(?(1)\1|-)\d{4}" + _NUM_AFTER
)
# International: +CC then up to 6 groups of digits with single separators (spaces, -, ., (..)).
_INTL = re.compile(
    r"(?<![0-9A-Za-z+])\+[1-9]\d{0,2}(?:[ \-.]?(?:\(\d{1,4}\)|\d{1,5})){1,6}" + _NUM_AFTER
)
_GROUP = re.compile(r"[ \-.]?(?:\(\d{1,4}\)|\d{1,5})")


def _intl_end(t: str, s: int, e: int) -> int:
    """Where a +CC number really ends (0 if it is not one): E.164 allows 15 digits, NANP (+1)
    exactly 11, and a lone trailing digit after a space is the next word ("+44 20 7946 0958 3x")."""
    groups = [(m.end(), sum(c.isdigit() for c in m.group())) for m in _GROUP.finditer(t, s, e)]
    # The first group is the "+CC..." digits themselves (the pattern's \d{0,2} part).
    total = sum(d for _, d in groups)
    nanp = t[s] == "1"  # +1 is the only country code that starts with 1
    while groups and (total > (11 if nanp else 15) or (len(groups) > 2 and groups[-1][1] == 1
                                                         and t[groups[-2][0]] == " ")):
        total -= groups.pop()[1]
    if not groups or (total != 11 if nanp else total < 8):
        return 0
    return groups[-1][0]


def find_phones(t: str, orig: str) -> Iterable[Span]:
    for m in _CN_MOBILE.finditer(t):
        digits = "".join(c for c in m.group() if c.isdigit())
        if digits[-11:-8] in _CN_MOBILE_BAD:
            continue
        yield Span("PHONE", m.start(), m.end(), orig[m.start():m.end()])
    for rx in (_CN_LANDLINE, _NANP):
        for m in rx.finditer(t):
            yield Span("PHONE", m.start(), m.end(), orig[m.start():m.end()])
    for m in _INTL.finditer(t):
        s = m.start()
        e = _intl_end(t, s + 1, m.end())
        if e:
            yield Span("PHONE", s, e, orig[s:e])


_CN_ID = re.compile(
    r"(?<![0-9A-Za-z])(?<![0-9][.,])[1-9]\d{5} ?(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])"
    r"(?:0[1-9]|[12]\d|3[01]) ?\d{3}[0-9Xx](?![0-9A-Za-z])(?![.,][0-9])"
)


def find_cn_ids(t: str, orig: str) -> Iterable[Span]:
    for m in _CN_ID.finditer(t):
        if cn_id_ok(m.group().replace(" ", "")):
            yield Span("CN_ID", m.start(), m.end(), orig[m.start():m.end()])


# 13-19 digits: one run, groups of four (the last one shorter), or Amex/Diners 4-6-5 and 4-6-4.
_CARD = re.compile(
    r"(?<![0-9A-Za-z])(?<![0-9][.,])"
    r"(?:\d{13,19}|\d{4}(?:[ \-]\d{4}){2,3}(?:[ \-]\d{1,4})?|\d{4}[ \-]\d{6}[ \-]\d{4,5})"
    r"(?![0-9A-Za-z])(?![.,][0-9])"
)


def _card_prefix_ok(d: str) -> bool:
    # ISO/IEC 7812 issuers that put cards in customers' hands: 3 (Amex, JCB, Diners), 4 (Visa),
    # 5 (Mastercard, Maestro), 6 (UnionPay, Discover, Maestro), 2221-2720 (Mastercard 2-series),
    # 81 (UnionPay's newer range). This drops 17-digit timestamps (20240115...) before Luhn.
    c = d[0]
    if c in "3456":
        return True
    if c == "2":
        return 2221 <= int(d[:4]) <= 2720
    return d[:2] == "81"


def find_cards(t: str, orig: str) -> Iterable[Span]:
    for m in _CARD.finditer(t):
        raw = m.group()
        seps = {c for c in raw if not c.isdigit()}
        if len(seps) > 1:  # "4111 1111-1111 1111": not how anyone writes a card
            continue
        d = raw.replace(" ", "").replace("-", "")
        if 13 <= len(d) <= 19 and _card_prefix_ok(d) and luhn_ok(d):
            yield Span("CARD", m.start(), m.end(), orig[m.start():m.end()])


_IBAN = re.compile(
    r"(?<![0-9A-Za-z])[A-Za-z]{2}\d{2}(?: ?[0-9A-Za-z]{4}){2,8}(?: ?[0-9A-Za-z]{1,3})?(?![0-9A-Za-z])"
)


def find_ibans(t: str, orig: str) -> Iterable[Span]:
    for m in _IBAN.finditer(t):
        s, raw = m.start(), m.group()
        want = IBAN_LENGTHS.get(raw[:2].upper())
        if want is None:
            continue
        # The pattern may have taken a following 4-letter word ("... 3000 Bank"): cut the
        # candidate at the country's length, which must fall at a group boundary.
        n = 0
        for i, c in enumerate(raw):
            if c != " ":
                n += 1
                if n == want:
                    cut = i + 1
                    break
        else:
            continue
        if cut < len(raw) and raw[cut] != " ":
            continue
        if iban_ok(raw[:cut].replace(" ", "").upper()):
            yield Span("IBAN", s, s + cut, orig[s:s + cut])


_IPV4 = re.compile(r"(?<![0-9A-Za-z.])(?:\d{1,3}\.){3}\d{1,3}(?![0-9A-Za-z])(?!\.\d)")
# "version 1.2.3.4", "v10.0.0.1", "build 2.0.1.5", "版本 1.0.0.1": dotted version numbers.
_VERSION_BEFORE = re.compile(r"(?<![A-Za-z])(?:version|ver\.?|v|build|release|版本号?)[ :]*$", re.IGNORECASE)
# An IPv6 candidate: hex and colons (at least two), maybe an IPv4 tail.
_IPV6 = re.compile(
    r"(?<![0-9A-Za-z:.])(?=[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:)[0-9A-Fa-f:]{2,39}"
    r"(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?![0-9A-Za-z])(?!\.\d)"
)


def find_ips(t: str, orig: str) -> Iterable[Span]:
    for m in _IPV4.finditer(t):
        s, e = m.span()
        if _VERSION_BEFORE.search(t, max(0, s - 12), s):
            continue
        try:
            ipaddress.IPv4Address(m.group())  # rejects octets > 255 and leading zeros
        except ValueError:
            continue
        yield Span("IP", s, e, orig[s:e])
    for m in _IPV6.finditer(t):
        s, e = m.span()
        cand = m.group()
        if cand.endswith(":") and not cand.endswith("::"):  # "2001:db8::1: refused"
            cand, e = cand[:-1], e - 1
        # "::", "::1" and "a::b" are not someone's address; a real one has two or more groups.
        if sum(1 for g in cand.split(":") if g) < 2 or not any(c.isdigit() for c in cand):
            continue
        try:
            ipaddress.IPv6Address(cand)
        except ValueError:
            continue
        yield Span("IP", s, e, orig[s:e])


# Well-known key formats. Each is specific enough that no validation beyond the shape is needed.
_KEY_PREFIXES = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:"
    r"sk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"  # Anthropic, OpenAI
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe secret and restricted keys
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}"  # GitHub
    r"|glpat-[A-Za-z0-9_\-]{20,}"  # GitLab
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}"  # AWS access key ids
    r"|AIza[0-9A-Za-z_\-]{35}"  # Google API keys
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"  # JWTs
    r")(?![A-Za-z0-9_\-])"
)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]{16,8192}?-----END (?:[A-Z]+ )*PRIVATE KEY-----"
)
# A value given to a secret-named key or after a scheme: password=..., "api_key": "...", 密码:...,
# Authorization: Bearer ..., scheme://user:password@host. Group 1 is the secret itself.
_KEY_VALUE = re.compile(
    r"(?:(?<![A-Za-z0-9])(?i:passw(?:or)?d|pwd|pass|secret|api[_\-]?key|access[_\-]?key|"
    r"(?:access|auth|refresh|api)[_\-]?token|client[_\-]?secret|private[_\-]?key)"
    r"[\"']?\s*(?:[:=]|\s(?i:is)\s)\s*[\"']?|(?:密码|口令|密钥|秘钥)(?:是|为)?\s*[:=]?\s*"
    r"|(?i:bearer)\s+)"
    # ASCII only (a password is typed on a keyboard): "密码错误次数过多" is not one.
    r"([A-Za-z0-9!#$%&*+\-./:=?@^_|~\[\]{}]{6,256})"
)
_URL_CREDENTIAL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]{1,64}:([^\s/@]{1,128})@")
# A long token of key characters: a candidate only, kept if random-looking (see looks_random).
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=_\-])[A-Za-z0-9+/_\-]{24,256}={0,2}(?![A-Za-z0-9+/=_\-])")
_HEX_UUID = re.compile(r"[0-9a-fA-F\-]+")

# Minimum Shannon entropy (bits/char) for a long token to count as a secret, by length: a random
# token's entropy grows with its length (it cannot exceed log2(n) bits), a name's does not (English
# letters stay near 4 bits). Fitted under the 1st percentile of random base62 tokens at each
# length, measured by bench/pii_entropy.py: 3.84 bits at 24 chars, 4.13 at 32, 4.83 at 64, capped
# at 5.0 from 80 chars on.
ENTROPY_SLOPE = 0.70
ENTROPY_INTERCEPT = 0.62
ENTROPY_CAP = 5.0


def entropy_min(n: int) -> float:
    return min(ENTROPY_CAP, ENTROPY_SLOPE * math.log2(n) + ENTROPY_INTERCEPT)


# Letters that read as words: a lower-case run of 4+ or a capitalised word. Names are mostly made
# of them (median 85% of the characters of long identifiers), random tokens are not (1% of random
# 32-char base62 tokens reach 50%).
_WORDS = re.compile(r"[a-z]{4,}|[A-Z][a-z]{3,}")
WORDY_MAX = 0.5


def looks_random(tok: str) -> bool:
    """A long token that is likely a generated key: see bench/pii_entropy.py for the numbers."""
    body = tok.rstrip("=")
    n = len(body)
    if n < 24 or _HEX_UUID.fullmatch(body):  # hex hashes and UUIDs are ids, not keys
        return False
    # A generated key mixes cases and digits; a file path, a slug, a sentence in snake_case
    # does not. One '/'-separated part per 12 characters at most: paths have many short parts.
    if not (any(c.isupper() for c in body) and any(c.islower() for c in body)
            and any(c.isdigit() for c in body)):
        return False
    if body.count("/") * 12 > n or body.count("-") + body.count("_") > n // 6:
        return False
    if sum(m.end() - m.start() for m in _WORDS.finditer(body)) >= WORDY_MAX * n:
        return False  # AmazonS3ReadOnlyAccessV2, getUserById2Async: a name
    return shannon_entropy(body) >= entropy_min(n)


def find_secrets(t: str, orig: str) -> Iterable[Span]:
    for m in _KEY_PREFIXES.finditer(t):
        # A real key has digits somewhere; "sk-learn-compatible-estimators" does not.
        if any(c.isdigit() for c in m.group()):
            yield Span("SECRET", m.start(), m.end(), orig[m.start():m.end()])
    for m in _PRIVATE_KEY.finditer(t):
        yield Span("SECRET", m.start(), m.end(), orig[m.start():m.end()])
    for m in _URL_CREDENTIAL.finditer(t):
        yield Span("SECRET", m.start(1), m.end(1), orig[m.start(1):m.end(1)])
    for m in _KEY_VALUE.finditer(t):
        s, e = m.span(1)
        while e > s and t[e - 1] in ".:":  # the sentence's full stop, not the password's
            e -= 1
        v = t[s:e]
        # "password is required", "password: ********": short and letters only is a word, and
        # masked values are not secrets.
        if len(v) < 6 or not (len(v) >= 12 or any(not c.isalpha() for c in v)) or set(v) <= {"*", "x", "X"}:
            continue
        yield Span("SECRET", s, e, orig[s:e])
    for m in _TOKEN.finditer(t):
        if looks_random(m.group()):
            yield Span("SECRET", m.start(), m.end(), orig[m.start():m.end()])


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


def resolve(spans: Iterable[Span]) -> list[Span]:
    """Non-overlapping spans, in text order: the longest wins, ties to the most specific type."""
    chosen: list[Span] = []
    for sp in sorted(spans, key=lambda x: (x.start - x.end, _RANK.get(x.type, 99), x.start)):
        if all(sp.end <= c.start or sp.start >= c.end for c in chosen):
            chosen.append(sp)
    chosen.sort(key=lambda x: x.start)
    return chosen


def detect(text: str, types: Iterable[str] = TYPES) -> list[Span]:
    """All PII spans of the given types in `text`, non-overlapping, in order."""
    if not text:
        return []
    t = fold(text)
    found: list[Span] = []
    for name in types:
        found.extend(DETECTORS[name](t, text))
    return resolve(found) if len(found) > 1 else found
