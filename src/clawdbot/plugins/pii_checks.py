"""The validators behind the pii detectors: checksums, the IBAN length table, and the entropy test
for unprefixed secrets. They run on candidates only (pii_detect.py finds those); each is what turns
"a run of digits" into "a card number" with a known false-positive rate.

Public: the tests and the benches call them directly."""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import date


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number carries: a random number passes 1 in 10."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_prefix_ok(d: str) -> bool:
    """ISO/IEC 7812 issuers that put cards in customers' hands: 3 (Amex, JCB, Diners), 4 (Visa),
    5 (Mastercard, Maestro), 6 (UnionPay, Discover, Maestro), 2221-2720 (Mastercard 2-series), 81
    (UnionPay's newer range). This drops 17-digit timestamps (20240115...) before Luhn does."""
    c = d[0]
    if c in "3456":
        return True
    if c == "2":
        return 2221 <= int(d[:4]) <= 2720
    return d[:2] == "81"


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"  # ISO 7064 MOD 11-2: the check character for (weighted sum) % 11
# Province-level codes (GB/T 2260) the first two digits must be; 83 is used on residence permits
# for residents of Taiwan, 81/82 for Hong Kong and Macao, 91 for foreigners' permanent residence.
_ID_PROVINCES = frozenset({
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
    50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91,
})


def cn_id_ok(value: str, today: date | None = None) -> bool:
    """An 18-character China resident identity number: a province code, a real birth date from
    1900 and not in the future, and the ISO 7064 MOD 11-2 check character (digit or X)."""
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
    """A compact, upper-case IBAN: the country's length, check digits 02..98, mod 97 == 1."""
    if IBAN_LENGTHS.get(value[:2]) != len(value) or not value.isalnum() or not value[2:4].isdigit():
        return False
    if not 2 <= int(value[2:4]) <= 98:
        return False
    # Letters become 10..35 (int(c, 36)); the first four characters move to the end.
    return int("".join(str(int(c, 36)) for c in value[4:] + value[:4])) % 97 == 1


def shannon_entropy(s: str) -> float:
    """Bits per character of the string's own character distribution."""
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0


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


_HEX_UUID = re.compile(r"[0-9a-fA-F\-]+")
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
